// Options objects as users pass them: an unknown key, or a Keras option kiln does not implement, is an error.
import { describe } from './errors.js';

/**
 * Keras options kiln does not implement, with the Keras default: passing the default is what kiln does anyway
 * (`returnState: false`, `dropout: 0`), any other value is an error saying the option is not supported.
 */
const NOT_IMPLEMENTED: ReadonlyMap<string, unknown> = new Map<string, unknown>([
  // recurrent layers
  ['returnState', false], ['dropout', 0], ['recurrentDropout', 0], ['stateful', false], ['unroll', false], ['useCudnn', 'auto'],
  // Embedding
  ['maskZero', false], ['inputLength', null], ['sparse', false],
  // attention
  ['attentionAxes', null], ['scoreMode', 'dot'], ['seed', null],
  // call options: masks and attention scores
  ['mask', null], ['attentionMask', null], ['queryMask', null], ['valueMask', null], ['keyMask', null],
  ['returnAttentionScores', false], ['useCausalMask', false], ['initialState', null],
  // regularizers and constraints
  ...['kernel', 'bias', 'activity', 'recurrent', 'embeddings', 'beta', 'gamma'].flatMap((w) => [[`${w}Regularizer`, null], [`${w}Constraint`, null]] as [string, null][]),
  // other layers
  ['noiseShape', null], ['rmsScaling', false], ['synchronized', false], ['renorm', false], ['loraRank', null],
  // optimizers
  ['clipnorm', null], ['clipvalue', null], ['globalClipnorm', null], ['useEma', false], ['emaMomentum', 0.99], ['emaOverwriteFrequency', null],
  ['lossScaleFactor', null], ['gradientAccumulationSteps', null], ['amsgrad', false],
  // losses
  ['labelSmoothing', 0], ['ignoreClass', null],
  // compile, fit, evaluate, predict
  ['weightedMetrics', null], ['runEagerly', false], ['stepsPerExecution', 1], ['jitCompile', 'auto'],
  ['callbacks', null], ['classWeight', null], ['sampleWeight', null], ['initialEpoch', 0], ['stepsPerEpoch', null],
  ['validationSteps', null], ['validationBatchSize', null], ['validationFreq', 1], ['steps', null],
]);

/** The option names of an options type, beyond those of Base; as `satisfies OptionNames<T>` the compiler checks the list is complete. */
export type OptionNames<T, Base = object> = Readonly<Record<Exclude<keyof T, keyof Base>, true>>;

/**
 * Throws unless `options` is undefined or an object whose keys are all in `known`; `where` names the function or
 * layer. A Keras option kiln does not implement is accepted only with its Keras default.
 */
export function checkOptions(options: unknown, known: Readonly<Record<string, true>>, where: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${where}: options must be an object, got ${describe(options)}`);
  for (const [k, v] of Object.entries(options)) {
    if (Object.hasOwn(known, k)) continue;
    const camel = k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (NOT_IMPLEMENTED.has(camel)) {
      if (v === undefined || v === NOT_IMPLEMENTED.get(camel)) continue;
      throw new Error(`${where}: option '${k}' is not supported by kiln (it accepts only the Keras default, ${JSON.stringify(NOT_IMPLEMENTED.get(camel))})`);
    }
    const hint = camel !== k && Object.hasOwn(known, camel) ? ` (did you mean '${camel}'?)` : '';
    const names = Object.keys(known);
    throw new Error(`${where}: unknown option '${k}'${hint}; ${names.length ? `options: ${names.join(', ')}` : 'it takes no options'}`);
  }
}
