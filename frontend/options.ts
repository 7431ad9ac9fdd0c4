// Options objects as users pass them: an unknown key, or a Keras option kiln does not implement, is an error.
import { describe } from './errors.js';

/**
 * Keras options kiln does not implement, by name, with their Keras defaults: passing the default is what kiln does
 * anyway (`returnState: false`, `dropout: 0`), any other value is an error saying the option is not supported. Each
 * class or function lists the ones its Keras counterpart has (Keras 3.15), so that an option it does not have in Keras
 * (Dense's returnState) is an unknown option.
 */
export type NotImplemented = Readonly<Record<string, unknown>>;

/** The regularizer and constraint options of the given weights (`kernelRegularizer`, `kernelConstraint`, ...): none in Keras. */
export function regularizers(...weights: string[]): NotImplemented {
  return Object.fromEntries(weights.flatMap((w) => [[`${w}Regularizer`, null], [`${w}Constraint`, null]]));
}

/** The option names of an options type, beyond those of Base; as `satisfies OptionNames<T>` the compiler checks the list is complete. */
export type OptionNames<T, Base = object> = Readonly<Record<Exclude<keyof T, keyof Base>, true>>;

/**
 * Throws unless `options` is undefined or an object whose keys are all in `known`; `where` names the function or
 * layer. A Keras option kiln does not implement (in `notImplemented`) is accepted only with its Keras default.
 */
export function checkOptions(options: unknown, known: Readonly<Record<string, true>>, where: string, notImplemented: NotImplemented = {}): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${where}: options must be an object, got ${describe(options)}`);
  for (const [k, v] of Object.entries(options)) {
    if (Object.hasOwn(known, k)) continue;
    const camel = k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (Object.hasOwn(notImplemented, camel)) {
      if (v === undefined || v === notImplemented[camel]) continue;
      throw new Error(`${where}: option '${k}' is not supported by kiln (it accepts only the Keras default, ${JSON.stringify(notImplemented[camel])})`);
    }
    const hint = camel !== k && Object.hasOwn(known, camel) ? ` (did you mean '${camel}'?)` : '';
    const names = Object.keys(known);
    throw new Error(`${where}: unknown option '${k}'${hint}; ${names.length ? `options: ${names.join(', ')}` : 'it takes no options'}`);
  }
}
