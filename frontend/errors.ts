// How error messages quote the values they were given.

/** A value as errors quote it: numbers as JS prints them (NaN, 1.5), anything else as JSON. */
export function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint' || v === undefined) return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return describe(v); // circular
  }
}

/** A short description of a value for errors: its type, and the value when it is short. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v)}`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'object') return v.constructor?.name && v.constructor !== Object ? `a ${v.constructor.name}` : 'an object';
  return `${typeof v} ${String(v)}`;
}
