// Callable objects (layer(x), lossFn(a, b)) and classes constructible with or without `new`.

/** Base whose instances are functions forwarding to `this.__call__`, so `obj(...)` works. */
export class CallableObject {
  constructor() {
    const fn = ((...args: unknown[]) => (fn as unknown as { __call__: (...a: unknown[]) => unknown }).__call__(...args)) as unknown as Record<string, unknown>;
    delete fn['name'];
    delete fn['length'];
    Object.setPrototypeOf(fn, new.target.prototype);
    return fn as unknown as CallableObject;
  }
}

/** Wraps a class so it can be constructed with or without `new` (keras.layers.Dense(64) and new Dense(64)). */
export function callableClass<C extends abstract new (...args: never[]) => unknown>(cls: C): C & ((...args: ConstructorParameters<C>) => InstanceType<C>) {
  return new Proxy(cls, {
    apply: (target, _this, args) => Reflect.construct(target as unknown as new (...a: unknown[]) => unknown, args),
  }) as C & ((...args: ConstructorParameters<C>) => InstanceType<C>);
}
