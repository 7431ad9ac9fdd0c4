// The seeded random graph generator lives in fuzz/ (the fuzzer builds on it); tests import it from here.
export * from '../../fuzz/random_graphs.js';
