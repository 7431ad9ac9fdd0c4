// Vector helper IR that llvm-bindings cannot parse (render.ts link()): parseIRFile wraps a null module then, and
// linking it killed the compiler with a segfault; it must be a one-line internal error naming the helper instead.
import { describe, expect, it, vi } from 'vitest';
import { renderLlvm } from '../../codegen/llvm/render.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { runPipeline } from '../../driver/pipeline.js';
import { Builder } from '../../ir/graph.js';

// the helpers for `broken` lanes get the clash that twice crashed the compiler: %a16 defined twice (dot2 on 75 lanes)
let broken: number | undefined;
vi.mock('../../codegen/llvm/vector.js', async (original) => {
  const real = await original<typeof import('../../codegen/llvm/vector.js')>();
  return {
    ...real,
    vectorHelpers: (w: number, dot?: import('../../codegen/llvm/vector.js').DotIsa) => {
      const ir = real.vectorHelpers(w, dot);
      return w === broken ? ir.replace(/^( {2}%b16 = bitcast .*)$/m, (l) => `${l}\n${l.replace('%b16', '%a16')}`) : ir;
    },
  };
});

/** exp of a [2, w] input: a vector loop of w lanes. */
function entries(w: number) {
  const b = new Builder(), x = b.input('x', { dtype: 'float32', shape: [2, w] });
  const g = b.finish('predict', [{ name: 'y', node: b.emit('exp', [x]) }]);
  const c = runPipeline(g, { caps: LLVM_CAPS });
  return [{ name: 'predict', program: c.program, memory: c.memory }];
}

describe('vector helpers that do not parse', () => {
  it('render the model when they parse', () => {
    broken = undefined;
    const e = entries(16);
    expect(renderLlvm(e, layoutModule(e), 'model')).toMatch(/@kiln_v16_expf/);
  });

  it('throw one line naming the helpers, the function and the error', () => {
    broken = 16;
    const e = entries(16);
    let message = '';
    try {
      renderLlvm(e, layoutModule(e), 'model');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^llvm: cannot parse the vector helpers for 16 lanes \(a bug in codegen\/llvm\/vector\.ts\): kiln_v16_dot2, line \d+: .*'a16'/);
    expect(message).not.toContain('\n');
  });
});
