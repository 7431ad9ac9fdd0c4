// LLVM IR text of the helpers a vector loop of W lanes calls: splats, lane indices, unaligned contiguous loads
// and stores, gathers, libm functions lane by lane, and Philox-4x32-10 on W lanes. llvm-bindings 14 cannot build
// vector types or insert, extract and shuffle lanes, so these are parsed from text and linked into the module;
// they are `alwaysinline`, and opt leaves plain vector code where they were called. (They are external here,
// as the linker skips unreferenced internal functions; `internalize` makes them internal in the printed module.)

const LIBM_UNARY = ['expf', 'logf', 'tanhf', 'erff', 'sinf', 'cosf'] as const;

/** IR element type and memory type of each scalar kind ('f64': the double a correctly rounded recip goes through). */
const ELEM = { f32: ['float', 'float'], i32: ['i32', 'i32'], bool: ['i1', 'i8'], f64: ['double', 'double'] } as const;
export type Lane = keyof typeof ELEM;

/** The name of a helper for W lanes. */
export const helper = (name: string, w: number): string => `kiln_v${w}_${name}`;

export function vectorHelpers(w: number): string {
  const vt = (e: string) => `<${w} x ${e}>`;
  const splat = (e: string, c: number | string) => `<${Array.from({ length: w }, () => `${e} ${c}`).join(', ')}>`;
  const lanes = (f: (i: number) => string) => Array.from({ length: w }, (_, i) => f(i)).join('\n');
  const fn = (ret: string, name: string, params: string, body: string) =>
    `define ${ret} @${helper(name, w)}(${params}) alwaysinline {\n${body}\n}\n`;
  const out: string[] = [];
  for (const [k, [e, m]] of Object.entries(ELEM)) {
    out.push(fn(vt(e), `splat_${k}`, `${e} %x`, `  %a = insertelement ${vt(e)} undef, ${e} %x, i32 0
  %b = shufflevector ${vt(e)} %a, ${vt(e)} undef, ${vt('i32')} zeroinitializer
  ret ${vt(e)} %b`));
    if (k === 'f64') continue;
    const widen = e === m ? '  ret %v' : `  %c = icmp ne ${vt(m)} %v, zeroinitializer\n  ret ${vt(e)} %c`;
    out.push(fn(vt(e), `load_${k}`, `${m}* %p`, `  %q = bitcast ${m}* %p to ${vt(m)}*
  %v = load ${vt(m)}, ${vt(m)}* %q, align ${m === 'i8' ? 1 : 4}
${widen.replace('ret %v', `ret ${vt(m)} %v`)}`));
    const narrow = e === m ? '' : `  %v = zext ${vt(e)} %x to ${vt(m)}\n`;
    out.push(fn('void', `store_${k}`, `${m}* %p, ${vt(e)} %x`, `${narrow}  %q = bitcast ${m}* %p to ${vt(m)}*
  store ${vt(m)} ${e === m ? '%x' : '%v'}, ${vt(m)}* %q, align ${m === 'i8' ? 1 : 4}
  ret void`));
    out.push(fn(vt(e), `gather_${k}`, `${m}* %p, ${vt('i32')} %i`, `${lanes((i) => `  %i${i} = extractelement ${vt('i32')} %i, i32 ${i}
  %p${i} = getelementptr inbounds ${m}, ${m}* %p, i32 %i${i}
  %l${i} = load ${m}, ${m}* %p${i}${e === m ? '' : `\n  %x${i} = icmp ne i8 %l${i}, 0`}
  %v${i} = insertelement ${vt(e)} ${i ? `%v${i - 1}` : 'undef'}, ${e} ${e === m ? `%l${i}` : `%x${i}`}, i32 ${i}`)}
  ret ${vt(e)} %v${w - 1}`));
  }
  out.push(fn(vt('i32'), 'iota', '', `  ret ${vt('i32')} <${Array.from({ length: w }, (_, i) => `i32 ${i}`).join(', ')}>`));
  // libm lane by lane
  const map = (name: string, e: string, arity: number) => fn(vt(e), name, Array.from({ length: arity }, (_, j) => `${vt(e)} %a${j}`).join(', '),
    `${lanes((i) => `${Array.from({ length: arity }, (_, j) => `  %x${j}_${i} = extractelement ${vt(e)} %a${j}, i32 ${i}`).join('\n')}
  %y${i} = call ${e} @${name}(${Array.from({ length: arity }, (_, j) => `${e} %x${j}_${i}`).join(', ')})
  %v${i} = insertelement ${vt(e)} ${i ? `%v${i - 1}` : 'undef'}, ${e} %y${i}, i32 ${i}`)}
  ret ${vt(e)} %v${w - 1}`);
  for (const f of LIBM_UNARY) out.push(map(f, 'float', 1), `declare float @${f}(float)\n`);
  out.push(map('powf', 'float', 2), 'declare float @powf(float, float)\n', map('kiln_ipow', 'i32', 2), 'declare i32 @kiln_ipow(i32, i32)\n');
  out.push(philox(w, vt, splat, fn));
  return out.join('\n');
}

/** Philox-4x32-10 as kiln_math.c's kiln_philox_uniform, on W lanes: word index%4 of block (index/4, counter, 0, 0). */
function philox(w: number, vt: (e: string) => string, splat: (e: string, c: number | string) => string,
  fn: (ret: string, name: string, params: string, body: string) => string): string {
  const i32 = vt('i32'), i64 = vt('i64');
  const body: string[] = [
    `  %seed.a = insertelement ${i32} undef, i32 %seed, i32 0`,
    `  %seed.v = shufflevector ${i32} %seed.a, ${i32} undef, ${i32} zeroinitializer`,
    `  %c0.0 = lshr ${i32} %index, ${splat('i32', 2)}`,
  ];
  let c0 = '%c0.0', c1 = '%counter', c2 = 'zeroinitializer', c3 = 'zeroinitializer';
  for (let r = 0; r < 10; r++) {
    const k0 = (Math.imul(r, 0x9e3779b9) | 0), k1 = (Math.imul(r, 0xbb67ae85) | 0);
    body.push(
      `  %k0.${r} = add ${i32} %seed.v, ${splat('i32', k0)}`,
      `  %w0.${r} = zext ${i32} ${c0} to ${i64}`,
      `  %w2.${r} = zext ${i32} ${c2} to ${i64}`,
      `  %p0.${r} = mul ${i64} %w0.${r}, ${splat('i64', 0xd2511f53)}`,
      `  %p1.${r} = mul ${i64} %w2.${r}, ${splat('i64', 0xcd9e8d57)}`,
      `  %h0.${r} = lshr ${i64} %p0.${r}, ${splat('i64', 32)}`,
      `  %h1.${r} = lshr ${i64} %p1.${r}, ${splat('i64', 32)}`,
      `  %t0.${r} = trunc ${i64} %h0.${r} to ${i32}`,
      `  %t1.${r} = trunc ${i64} %h1.${r} to ${i32}`,
      `  %x0.${r} = xor ${i32} %t1.${r}, ${c1}`,
      `  %n0.${r} = xor ${i32} %x0.${r}, %k0.${r}`,
      `  %x2.${r} = xor ${i32} %t0.${r}, ${c3}`,
      `  %n2.${r} = xor ${i32} %x2.${r}, ${splat('i32', k1)}`,
      `  %c1.${r} = trunc ${i64} %p1.${r} to ${i32}`,
      `  %c3.${r} = trunc ${i64} %p0.${r} to ${i32}`,
    );
    c0 = `%n0.${r}`; c2 = `%n2.${r}`; c1 = `%c1.${r}`; c3 = `%c3.${r}`;
  }
  body.push(
    `  %j = and ${i32} %index, ${splat('i32', 3)}`,
    `  %is1 = icmp eq ${i32} %j, ${splat('i32', 1)}`,
    `  %is2 = icmp eq ${i32} %j, ${splat('i32', 2)}`,
    `  %is3 = icmp eq ${i32} %j, ${splat('i32', 3)}`,
    `  %s3 = select ${vt('i1')} %is3, ${i32} ${c3}, ${i32} ${c0}`,
    `  %s2 = select ${vt('i1')} %is2, ${i32} ${c2}, ${i32} %s3`,
    `  %s1 = select ${vt('i1')} %is1, ${i32} ${c1}, ${i32} %s2`,
    `  %b = lshr ${i32} %s1, ${splat('i32', 8)}`,
    `  %f = uitofp ${i32} %b to ${vt('float')}`,
    `  %u = fmul ${vt('float')} %f, ${splat('float', '0x3E70000000000000')}`,
    `  ret ${vt('float')} %u`,
  );
  return fn(vt('float'), 'philox', `i32 %seed, ${i32} %counter, ${i32} %index`, body.join('\n'));
}

/** The module text with the vector helpers internal, so opt drops them once inlined. */
export const internalize = (ir: string): string => ir.replace(/^define ([^@\n]*@kiln_v\d+_)/gm, 'define internal $1');
