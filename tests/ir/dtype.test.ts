// The dtype table: reduction identities against the interpreter, sizes against typed storage, names against the formats.
import { describe, expect, it } from 'vitest';
import { evalOp } from '../../ir/interpreter.js';
import { REDUCE_BINARY, REDUCE_KIND, REDUCE_OPS } from '../../ir/ops.js';
import { parseGraph } from '../../ir/parser.js';
import { DTYPES, type DType, allocate, identityOf, isDType, toTyped } from '../../ir/types.js';
import { scalarOf } from '../../codegen/loop/ir.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';
import { readSafetensors, writeSafetensors } from '../../runtime/safetensors.js';
import { INT_MAX, INT_MIN, expectSame, run } from './helpers.js';

const F = Math.fround;
const PROBES: Record<'float32' | 'int32', number[]> = {
  float32: [NaN, Infinity, -Infinity, 0, -0, 1, -1, 0.5, -2.5, 3.4e38, -3.4e38, 1e-45, -1e-45].map(F),
  int32: [INT_MIN, INT_MAX, INT_MIN + 1, INT_MAX - 1, -1, 0, 1, 7, -7],
};
const COMPUTED: DType[] = ['float32', 'int32', 'bool'];

describe('reduction identities', () => {
  describe.each(['float32', 'int32'] as const)('%s', (dtype) => {
    it.each([...REDUCE_OPS])('%s over an empty axis is the identity', (op) => {
      // the builder refuses max/min over an empty axis (no value to give), so the op is evaluated on its own
      const empty = { type: { dtype, shape: [2, 0] }, data: allocate(dtype, 0) };
      const got = evalOp({ op, type: { dtype, shape: [2] }, attrs: { axes: [1] } }, [empty]);
      expectSame(got, toTyped(dtype, [identityOf(REDUCE_KIND[op], dtype), identityOf(REDUCE_KIND[op], dtype)]));
    });

    it.each([...REDUCE_OPS])('%s: identity combined with x is x, and a reduction of [x] is x', (op) => {
      const kind = REDUCE_KIND[op], e = identityOf(kind, dtype);
      // +0 starts a sum as NumPy's empty sum does, so a float sum of only -0 is +0 (-0 is IEEE's additive identity)
      const xs = PROBES[dtype].filter((x) => !(kind === 'sum' && Object.is(x, -0)));
      const n = xs.length;
      const combined = run(REDUCE_BINARY[kind], [{ shape: [n], data: xs.map(() => e), dtype }, { shape: [n], data: xs, dtype }]);
      expectSame(combined.data, toTyped(dtype, xs));
      expectSame(run(op, [{ shape: [n, 1], data: xs, dtype }], { axes: [1] }).data, toTyped(dtype, xs));
    });
  });

  it('bool: max is or from false, min is and from true', () => {
    for (const x of [0, 1]) {
      expectSame(run('or', [{ shape: [1], data: [identityOf('max', 'bool')], dtype: 'bool' }, { shape: [1], data: [x], dtype: 'bool' }]).data, [x]);
      expectSame(run('and', [{ shape: [1], data: [identityOf('min', 'bool')], dtype: 'bool' }, { shape: [1], data: [x], dtype: 'bool' }]).data, [x]);
    }
  });

  it('reduce_window over padding only is the identity of its kind', () => {
    for (const dtype of ['float32', 'int32'] as const) {
      for (const kind of ['max', 'sum'] as const) {
        const y = run('reduce_window', [{ shape: [1, 1, 1], data: [5], dtype }], { kind, window: [1], strides: [1], padding: [[1, 0]] });
        expectSame(y.data, toTyped(dtype, [identityOf(kind, dtype), 5]));
      }
    }
  });
});

describe('the dtype table', () => {
  it('byte sizes and scalars match typed storage and the loop IR', () => {
    for (const d of COMPUTED) {
      expect(DTYPES[d].bytes, d).toBe(allocate(d, 1).BYTES_PER_ELEMENT);
      expect(DTYPES[d].scalar, d).toBe(scalarOf(d));
    }
    expect(DTYPES.float16.bytes).toBe(2);
    expect(DTYPES.bfloat16.scalar).toBeUndefined();
    expect(() => scalarOf('float16')).toThrow(/not supported/);
  });

  it('npy and safetensors names are the ones the files carry', () => {
    for (const d of COMPUTED) {
      const header = new TextDecoder().decode(writeNpy(d, [1], allocate(d, 1)).subarray(0, 64));
      expect(header, d).toContain(`'descr': '${DTYPES[d].names!.npy}'`);
      const st = writeSafetensors([{ name: 't', dtype: d, shape: [1], data: allocate(d, 1) }]);
      expect(new TextDecoder().decode(st), d).toContain(`"dtype":"${DTYPES[d].names!.safetensors}"`);
      expect(readSafetensors(st).tensors[0]!.dtype).toBe(d);
    }
  });

  it('an int8 .npy reads back signed, as written (the fuzzer reads int8 outputs of the native targets this way)', () => {
    const data = Int8Array.of(-128, -1, 0, 1, 127);
    const back = readNpy(writeNpy('int8', [5], data));
    expect(back.dtype).toBe('int8');
    expect(Array.from(back.data)).toEqual([-128, -1, 0, 1, 127]);
  });

  it('only its own names are dtypes (not Object.prototype keys)', () => {
    expect(['float32', 'int32', 'bool', 'float16', 'bfloat16'].every(isDType)).toBe(true);
    for (const s of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'f32', 'float64']) expect(isDType(s), s).toBe(false);
    expect(() => parseGraph('graph @g {\n  %0 = input {name="x"} : constructor[2]\n  output "y" = %0\n}')).toThrow(/bad type 'constructor\[2\]'/);
    expect(() => parseGraph('graph @g {\n  %0 = input {name="x"} : toString[2]\n  output "y" = %0\n}')).toThrow(/bad type/);
  });
});
