// LLVM IR text of the helpers a vector loop of W lanes calls: splats, lane indices, unaligned contiguous loads and
// stores, exp, log, tanh and Philox-4x32-10 on W lanes, and any libm or runtime function lane by lane. llvm-bindings
// 14 cannot build vector types or insert, extract and shuffle lanes, so these are parsed from text and linked in;
// they are `alwaysinline`, and opt leaves plain vector code where they were called. (They are external here,
// as the linker skips unreferenced internal functions; `internalize` makes them internal in the printed module.)

/** IR element type and memory type of each scalar kind ('f64': the double a correctly rounded recip goes through). */
const ELEM = { f32: ['float', 'float'], i32: ['i32', 'i32'], bool: ['i1', 'i8'], f64: ['double', 'double'] } as const;
export type Lane = keyof typeof ELEM;

/** The name of a helper for W lanes. */
export const helper = (name: string, w: number): string => `kiln_v${w}_${name}`;

/**
 * The instruction that renders dot2 (loop/ir.ts) on a target: x86's pmaddwd on 512, 256 or 128 bits (with an add,
 * vpdpwssd where the CPU has AVX-VNNI: instruction selection fuses them; 'avx512vnni': also dot4 as vpdpbusd), the
 * Cortex-M4's SMUAD / SMLAD ('dsp');
 * undefined: the generic even/odd-lane form.
 */
export type DotIsa = 'avx512' | 'avx512vnni' | 'avx2' | 'sse2' | 'dsp';

const PMADDWD = { avx512: [16, 'llvm.x86.avx512.pmaddw.d.512'], avx2: [8, 'llvm.x86.avx2.pmadd.wd'], sse2: [4, 'llvm.x86.sse2.pmadd.wd'] } as const;

/**
 * int8 requantization's fixed-point ops (loop/ir.ts qmulhi, qshr) on W lanes, the bits of the scalar forms in
 * render.ts. qmulhi: its nudge and truncating division by 2^31 are floor((a·b + 2^30) / 2^31) for either sign of a·b
 * (a·b < 0: (a·b + 1 - 2^30) is negative, and truncating it toward zero adds 2^31 - 1 before the floor), of which
 * only bits 31..62 are kept: a logical shift (AVX2 has no 64-bit arithmetic one), on vpmuldq's 64-bit products.
 * For an even W the products are of the even lanes and of the odd ones in place (the i32 pairs as i64 lanes, each
 * half sign-extended: one vpmuldq each, no widening shuffles), the even results in the low halves (>> 31) and the odd
 * in the high (<< 1), blended (seed MLP b256 int8, 1 thread: the hidden layer's requantization 13.7% -> 11.3% of its
 * kernel's samples). The one product that overflows, INT_MIN², gives INT_MIN (2^31 wrapped), which no other
 * operands give (a·b >= -2^62 + 2^31, whose rounded quotient is -2^31 + 1): INT_MIN is made INT_MAX, one compare.
 */
function requantizeHelpers(w: number): string[] {
  const vt = (e: string, n = w) => `<${n} x ${e}>`, splat = (e: string, v: number, n = w) => `<${Array.from({ length: n }, () => `${e} ${v}`).join(', ')}>`;
  const fn = (name: string, body: string) => `define ${vt('i32')} @${helper(name, w)}(${vt('i32')} %a, ${vt('i32')} %b) alwaysinline {\n${body}\n}\n`;
  const h = w / 2, q = vt('i64', h), c = (v: number) => splat('i64', v, h);
  const inPlace = () => `${['a', 'b'].map((v) => `  %${v}q = bitcast ${vt('i32')} %${v} to ${q}
  %${v}l = shl ${q} %${v}q, ${c(32)}
  %${v}e = ashr ${q} %${v}l, ${c(32)}
  %${v}o = ashr ${q} %${v}q, ${c(32)}`).join('\n')}
  %pe = mul ${q} %ae, %be
  %po = mul ${q} %ao, %bo
  %se = add ${q} %pe, ${c(2 ** 30)}
  %so = add ${q} %po, ${c(2 ** 30)}
  %he = lshr ${q} %se, ${c(31)}
  %ho = shl ${q} %so, ${c(1)}
  %re = bitcast ${q} %he to ${vt('i32')}
  %ro = bitcast ${q} %ho to ${vt('i32')}
  %r = shufflevector ${vt('i32')} %re, ${vt('i32')} %ro, ${vt('i32')} <${Array.from({ length: w }, (_, i) => `i32 ${i % 2 ? w + i : i}`).join(', ')}>`;
  const widened = () => `  %a64 = sext ${vt('i32')} %a to ${vt('i64')}
  %b64 = sext ${vt('i32')} %b to ${vt('i64')}
  %ab = mul ${vt('i64')} %a64, %b64
  %s = add ${vt('i64')} %ab, ${splat('i64', 2 ** 30)}
  %h = lshr ${vt('i64')} %s, ${splat('i64', 31)}
  %r = trunc ${vt('i64')} %h to ${vt('i32')}`;
  return [fn('qmulhi', `${w % 2 === 0 ? inPlace() : widened()}
  %o = icmp eq ${vt('i32')} %r, ${splat('i32', -(2 ** 31))}
  %y = select ${vt('i1')} %o, ${vt('i32')} ${splat('i32', 2 ** 31 - 1)}, ${vt('i32')} %r
  ret ${vt('i32')} %y`),
  // (a >> e) + ((a & mask) > (mask >> 1) + (a < 0)), mask = 2^e - 1 (e = 31: 1 << 31 wraps, mask INT_MAX)
  fn('qshr', `  %one = shl ${vt('i32')} ${splat('i32', 1)}, %b
  %mask = sub ${vt('i32')} %one, ${splat('i32', 1)}
  %half = ashr ${vt('i32')} %mask, ${splat('i32', 1)}
  %neg = icmp slt ${vt('i32')} %a, zeroinitializer
  %n = zext ${vt('i1')} %neg to ${vt('i32')}
  %th = add ${vt('i32')} %half, %n
  %rem = and ${vt('i32')} %a, %mask
  %up = icmp sgt ${vt('i32')} %rem, %th
  %u = zext ${vt('i1')} %up to ${vt('i32')}
  %sh = ashr ${vt('i32')} %a, %b
  %y = add ${vt('i32')} %sh, %u
  ret ${vt('i32')} %y`),
  // requant(a, b, e) = qshr(qmulhi(a, b), e), requantization's pair. qshr of an h that is never INT_MIN (qmulhi's
  // result, see above) and e >= 1: h = k 2^e + rem (0 <= rem < 2^e) rounds up where rem > 2^(e-1) - 1 + n (n = [h < 0]),
  // i.e. rem + 2^(e-1) - n >= 2^e: the result is floor((h - n + 2^(e-1)) / 2^e). x = h - n = h + (h >> 31) does not
  // wrap (h > INT_MIN), and with y = floor(x / 2^(e-1)) (nested floors) that is floor((y + 1) / 2) = y - floor(y / 2):
  // shifts and a subtraction, none past int32. x is taken of the unsaturated product r: where r = INT_MIN, r + (r >> 31)
  // wraps to INT_MAX, the x of the saturated h = INT_MAX, so only e = 0 (h itself: the select, which a constant
  // shift folds away) needs the saturation.
  `define ${vt('i32')} @${helper('requant', w)}(${vt('i32')} %a, ${vt('i32')} %b, ${vt('i32')} %e) alwaysinline {
${w % 2 === 0 ? inPlace() : widened()}
  %o = icmp eq ${vt('i32')} %r, ${splat('i32', -(2 ** 31))}
  %sat = select ${vt('i1')} %o, ${vt('i32')} ${splat('i32', 2 ** 31 - 1)}, ${vt('i32')} %r
  %n = ashr ${vt('i32')} %r, ${splat('i32', 31)}
  %x = add ${vt('i32')} %r, %n
  %e1 = add ${vt('i32')} %e, ${splat('i32', -1)}
  %e1m = and ${vt('i32')} %e1, ${splat('i32', 31)}
  %y = ashr ${vt('i32')} %x, %e1m
  %y2 = ashr ${vt('i32')} %y, ${splat('i32', 1)}
  %q = sub ${vt('i32')} %y, %y2
  %z = icmp eq ${vt('i32')} %e, zeroinitializer
  %v = select ${vt('i1')} %z, ${vt('i32')} %sat, ${vt('i32')} %q
  ret ${vt('i32')} %v
}
`];
}

/**
 * A W-lane i32 function of i32 vector operands computed by an instruction of C lanes: the operands' lanes padded to a
 * whole number of chunks of the C in `widths` that needs the fewest (the narrowest of those; undefined lanes, dropped
 * after), each chunk's operands (bitcast to `chunkType`) passed to `name`, the results put back together. Undefined
 * where there is no width. (10 lanes, the seed MLP's output layer: one chunk of 16, where chunks of 4 that divide the
 * 12 padded lanes took three, and lane moves between them: 9.2% -> 4.0% of the int8 MLP in that kernel.)
 */
function chunked(w: number, widths: readonly (readonly [number, string])[], params: readonly string[], chunkType: (c: number) => string): { decl: string; lines: string[]; out: string } | undefined {
  const vt = (e: string, n = w) => `<${n} x ${e}>`, ints = (xs: number[]) => `<${xs.map((x) => `i32 ${x}`).join(', ')}>`;
  const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
  const found = widths.reduce<readonly [number, string] | undefined>((f, x) => (!f || Math.ceil(w / x[0]) < Math.ceil(w / f[0]) || (Math.ceil(w / x[0]) === Math.ceil(w / f[0]) && x[0] < f[0]) ? x : f), undefined);
  if (!found) return undefined;
  const [c, name] = found, n = Math.ceil(w / c), wp = n * c, ic = vt('i32', c), ip = vt('i32', wp), ct = chunkType(c);
  const lines = params.flatMap((v) => (wp === w ? [] : [`  %${v}p = shufflevector ${vt('i32')} %${v}, ${vt('i32')} undef, ${ip} ${ints(range(wp, (i) => (i < w ? i : w)))}`]));
  const padded = (v: string) => (wp === w ? `%${v}` : `%${v}p`);
  let acc = '';
  for (let j = 0; j < n; j++) {
    // chunk j's operands %<v>c<j> (not %a<j>: chunk 16 of 19, w = 75 on SSE2, was %a16 twice, text LLVM rejects)
    for (const v of params) {
      lines.push(`  %${v}i${j} = shufflevector ${ip} ${padded(v)}, ${ip} undef, ${ic} ${ints(range(c, (i) => c * j + i))}`);
      lines.push(ct === ic ? `  %${v}c${j} = bitcast ${ic} %${v}i${j} to ${ic}` : `  %${v}c${j} = bitcast ${ic} %${v}i${j} to ${ct}`);
    }
    lines.push(`  %d${j} = call ${ic} @${name}(${params.map((v) => `${ct} %${v}c${j}`).join(', ')})`);
    if (n === 1) { acc = `%d${j}`; continue; }
    // chunk j into lanes j*c.. of the result: widened to wp lanes, then shuffled in
    lines.push(`  %e${j} = shufflevector ${ic} %d${j}, ${ic} undef, ${ip} ${ints(range(wp, (i) => (i < c ? i : c)))}`);
    if (j === 0) { acc = `%e0`; continue; }
    lines.push(`  %r${j} = shufflevector ${ip} ${acc}, ${ip} %e${j}, ${ip} ${ints(range(wp, (i) => (i >= c * j && i < c * (j + 1) ? wp + i - c * j : i)))}`);
    acc = `%r${j}`;
  }
  if (wp !== w) {
    lines.push(`  %out = shufflevector ${ip} ${acc}, ${ip} undef, ${vt('i32')} ${ints(range(w, (i) => i))}`);
    acc = '%out';
  }
  return { decl: `declare ${ic} @${name}(${params.map(() => ct).join(', ')})`, lines, out: acc };
}

/** dot2 on W lanes: pmaddwd on each chunk of C lanes (the widest that divides W), else even and odd i16 lanes. */
function dot2Helper(w: number, dot: DotIsa | undefined): string {
  const vt = (e: string, n = w) => `<${n} x ${e}>`, h = vt('i16', 2 * w), ints = (xs: number[]) => `<${xs.map((x) => `i32 ${x}`).join(', ')}>`;
  const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
  const widths: readonly (keyof typeof PMADDWD)[] = dot === 'avx512' || dot === 'avx512vnni' ? ['avx512', 'avx2', 'sse2'] : dot === 'avx2' ? ['avx2', 'sse2'] : dot === 'sse2' ? ['sse2'] : [];
  const chunks = chunked(w, widths.map((d) => PMADDWD[d]), ['a', 'b'], (c) => vt('i16', 2 * c));
  if (chunks) return `${chunks.decl}\ndefine ${vt('i32')} @${helper('dot2', w)}(${vt('i32')} %a, ${vt('i32')} %b) alwaysinline {\n${chunks.lines.join('\n')}\n  ret ${vt('i32')} ${chunks.out}\n}\n`;
  const lines = [`  %a16 = bitcast ${vt('i32')} %a to ${h}`, `  %b16 = bitcast ${vt('i32')} %b to ${h}`];
  for (const o of [0, 1]) for (const v of ['a', 'b']) {
    lines.push(`  %${v}${o}h = shufflevector ${h} %${v}16, ${h} undef, ${vt('i32')} ${ints(range(w, (i) => 2 * i + o))}`);
    lines.push(`  %${v}${o} = sext ${vt('i16')} %${v}${o}h to ${vt('i32')}`);
  }
  lines.push(`  %m0 = mul ${vt('i32')} %a0, %b0`, `  %m1 = mul ${vt('i32')} %a1, %b1`, `  %d = add ${vt('i32')} %m0, %m1`);
  return `define ${vt('i32')} @${helper('dot2', w)}(${vt('i32')} %a, ${vt('i32')} %b) alwaysinline {\n${lines.join('\n')}\n  ret ${vt('i32')} %d\n}\n`;
}

/** vpdpbusd (acc + the u8 x s8 quads of a and b per i32 lane) on 512, 256 and 128 bits (AVX-512 VNNI with VL). */
const VPDPBUSD = [[16, 'llvm.x86.avx512.vpdpbusd.512'], [8, 'llvm.x86.avx512.vpdpbusd.256'], [4, 'llvm.x86.avx512.vpdpbusd.128']] as const;

/**
 * dot4 (loop/ir.ts) on W lanes, and dpbusd(c, a, b) = c + dot4(a, b) (what render.ts makes of an accumulation of dot4):
 * vpdpbusd on chunks of lanes where the CPU has AVX-512 VNNI, else a's bytes zero-extended times b's sign-extended,
 * each lane's four products summed.
 */
function dot4Helpers(w: number, dot: DotIsa | undefined): string {
  const vt = (e: string, n = w) => `<${n} x ${e}>`, ints = (xs: number[]) => `<${xs.map((x) => `i32 ${x}`).join(', ')}>`;
  const q = vt('i8', 4 * w), wide = vt('i32', 4 * w), fn = (name: string, params: string, body: string) => `define ${vt('i32')} @${helper(name, w)}(${params}) alwaysinline {\n${body}\n}\n`;
  const chunks = dot === 'avx512vnni' ? chunked(w, VPDPBUSD, ['c', 'a', 'b'], (c) => vt('i32', c)) : undefined;
  if (chunks) return `${chunks.decl}\n${fn('dpbusd', `${vt('i32')} %c, ${vt('i32')} %a, ${vt('i32')} %b`, `${chunks.lines.join('\n')}\n  ret ${vt('i32')} ${chunks.out}`)}${fn('dot4', `${vt('i32')} %a, ${vt('i32')} %b`, `  %d = call ${vt('i32')} @${helper('dpbusd', w)}(${vt('i32')} zeroinitializer, ${vt('i32')} %a, ${vt('i32')} %b)\n  ret ${vt('i32')} %d`)}`;
  const lines = [`  %a8 = bitcast ${vt('i32')} %a to ${q}`, `  %b8 = bitcast ${vt('i32')} %b to ${q}`, `  %az = zext ${q} %a8 to ${wide}`, `  %bs = sext ${q} %b8 to ${wide}`, `  %m = mul ${wide} %az, %bs`];
  for (let o = 0; o < 4; o++) lines.push(`  %m${o} = shufflevector ${wide} %m, ${wide} undef, ${vt('i32')} ${ints(Array.from({ length: w }, (_, i) => 4 * i + o))}`);
  lines.push(`  %s0 = add ${vt('i32')} %m0, %m1`, `  %s1 = add ${vt('i32')} %m2, %m3`, `  %d = add ${vt('i32')} %s0, %s1`);
  return `${fn('dot4', `${vt('i32')} %a, ${vt('i32')} %b`, `${lines.join('\n')}\n  ret ${vt('i32')} %d`)}${fn('dpbusd', `${vt('i32')} %c, ${vt('i32')} %a, ${vt('i32')} %b`, `  %d = call ${vt('i32')} @${helper('dot4', w)}(${vt('i32')} %a, ${vt('i32')} %b)\n  %s = add ${vt('i32')} %c, %d\n  ret ${vt('i32')} %s`)}`;
}

/** cvtps2dq on 512, 256 and 128 bits: floats to i32 rounded in the current mode (to nearest even, as rint). */
const CVTPS2DQ = [[16, 'kiln_cvtps2dq_512'], [8, 'llvm.x86.avx.cvt.ps2dq.256'], [4, 'llvm.x86.sse2.cvtps2dq']] as const;

/**
 * rint_i32 on W lanes: fptosi(rint(x)) for x within i32 (render.ts: quantize's rounded quotient) as one cvtps2dq per
 * chunk on x86 (LLVM 14 selects a vrndscaleps and a vcvttps2dq for the pair); undefined elsewhere.
 */
function rintI32Helper(w: number, dot: DotIsa | undefined): string | undefined {
  const vt = (e: string, n = w) => `<${n} x ${e}>`;
  const widths = dot === 'avx512' || dot === 'avx512vnni' ? CVTPS2DQ : dot === 'avx2' ? CVTPS2DQ.slice(1) : dot === 'sse2' ? CVTPS2DQ.slice(2) : [];
  const chunks = chunked(w, widths, ['x'], (c) => vt('float', c));
  if (!chunks) return undefined;
  // the 512-bit one is the masked intrinsic, with all lanes and the current rounding mode (4)
  const mask = (t: string) => t.replace(/kiln_cvtps2dq_512\(([^)]*)\)/g, 'llvm.x86.avx512.mask.cvtps2dq.512($1, <16 x i32> undef, i16 -1, i32 4)');
  const decls = chunks.decl.replace(/kiln_cvtps2dq_512\(.*\)$/, 'llvm.x86.avx512.mask.cvtps2dq.512(<16 x float>, <16 x i32>, i16, i32)');
  return `${decls}\ndefine ${vt('i32')} @${helper('rint_i32', w)}(${vt('float')} %xf) alwaysinline {\n  %x = bitcast ${vt('float')} %xf to ${vt('i32')}\n${chunks.lines.map(mask).join('\n')}\n  ret ${vt('i32')} ${chunks.out}\n}\n`;
}

export function vectorHelpers(w: number, dot?: DotIsa): string {
  const vt = (e: string) => `<${w} x ${e}>`;
  const fn = (ret: string, name: string, params: string, body: string) =>
    `define ${ret} @${helper(name, w)}(${params}) alwaysinline {\n${body}\n}\n`;
  const out: string[] = [];
  for (const [k, [e, m]] of Object.entries(ELEM)) {
    out.push(fn(vt(e), `splat_${k}`, `${e} %x`, `  %a = insertelement ${vt(e)} undef, ${e} %x, i32 0
  %b = shufflevector ${vt(e)} %a, ${vt(e)} undef, ${vt('i32')} zeroinitializer
  ret ${vt(e)} %b`));
    if (k === 'f64') continue;
    const align = m === 'i8' ? 1 : 4;
    out.push(fn(vt(e), `load_${k}`, `${m}* %p`, `  %q = bitcast ${m}* %p to ${vt(m)}*
  %v = load ${vt(m)}, ${vt(m)}* %q, align ${align}
${e === m ? `  ret ${vt(m)} %v` : `  %c = icmp ne ${vt(m)} %v, zeroinitializer\n  ret ${vt(e)} %c`}`));
    const narrow = e === m ? '' : `  %v = zext ${vt(e)} %x to ${vt(m)}\n`;
    out.push(fn('void', `store_${k}`, `${m}* %p, ${vt(e)} %x`, `${narrow}  %q = bitcast ${m}* %p to ${vt(m)}*
  store ${vt(m)} ${e === m ? '%x' : '%v'}, ${vt(m)}* %q, align ${align}
  ret void`));
  }
  // int8 buffers: i32 lanes in registers, sign-extended on load and truncated on store
  out.push(fn(vt('i32'), 'load_i8', 'i8* %p', `  %q = bitcast i8* %p to ${vt('i8')}*
  %v = load ${vt('i8')}, ${vt('i8')}* %q, align 1
  %c = sext ${vt('i8')} %v to ${vt('i32')}
  ret ${vt('i32')} %c`));
  // quads (loop/ir.ts): lane i the 4 bytes from p + 4i as one little-endian i32, unaligned
  out.push(fn(vt('i32'), 'load_q8', 'i8* %p', `  %q = bitcast i8* %p to ${vt('i32')}*
  %v = load ${vt('i32')}, ${vt('i32')}* %q, align 1
  ret ${vt('i32')} %v`));
  out.push(fn('void', 'store_i8', `i8* %p, ${vt('i32')} %x`, `  %v = trunc ${vt('i32')} %x to ${vt('i8')}
  %q = bitcast i8* %p to ${vt('i8')}*
  store ${vt('i8')} %v, ${vt('i8')}* %q, align 1
  ret void`));
  out.push(dot2Helper(w, dot), dot4Helpers(w, dot), rintI32Helper(w, dot) ?? '');
  out.push(...requantizeHelpers(w));
  // acc + dot2(a, b) lane by lane as the Cortex-M4's SMLAD (it has no vectors: LLVM scalarizes the rest)
  if (dot === 'dsp') {
    const lanes = Array.from({ length: w }, (_, i) => `  %c${i} = extractelement ${vt('i32')} %c, i32 ${i}
  %a${i} = extractelement ${vt('i32')} %a, i32 ${i}
  %b${i} = extractelement ${vt('i32')} %b, i32 ${i}
  %y${i} = call i32 @llvm.arm.smlad(i32 %a${i}, i32 %b${i}, i32 %c${i})
  %v${i} = insertelement ${vt('i32')} ${i ? `%v${i - 1}` : 'undef'}, i32 %y${i}, i32 ${i}`).join('\n');
    out.push(`declare i32 @llvm.arm.smlad(i32, i32, i32)\n${fn(vt('i32'), 'smlad', `${vt('i32')} %c, ${vt('i32')} %a, ${vt('i32')} %b`, `${lanes}\n  ret ${vt('i32')} %v${w - 1}`)}`);
  }
  for (const [k, e] of [['f32', 'float'], ['i32', 'i32'], ['bool', 'i1']] as const) out.push(fn(e, `extract_${k}`, `${vt(e)} %v, i32 %i`, `  %x = extractelement ${vt(e)} %v, i32 %i\n  ret ${e} %x`));
  out.push(fn(vt('i32'), 'iota', '', `  ret ${vt('i32')} <${Array.from({ length: w }, (_, i) => `i32 ${i}`).join(', ')}>`));
  out.push(...vectorMath(w));
  return out.join('\n');
}

/** A helper applying the scalar function `name` (arity operands of e) to each of W lanes, with its declaration. */
export function laneByLane(name: string, w: number, arity: number, e: 'float' | 'double' | 'i32'): string {
  const vt = `<${w} x ${e}>`, args = Array.from({ length: arity }, (_, j) => j);
  const lanes = Array.from({ length: w }, (_, i) => `${args.map((j) => `  %x${j}_${i} = extractelement ${vt} %a${j}, i32 ${i}`).join('\n')}
  %y${i} = call ${e} @${name}(${args.map((j) => `${e} %x${j}_${i}`).join(', ')})
  %v${i} = insertelement ${vt} ${i ? `%v${i - 1}` : 'undef'}, ${e} %y${i}, i32 ${i}`).join('\n');
  return `define ${vt} @${helper(name, w)}(${args.map((j) => `${vt} %a${j}`).join(', ')}) alwaysinline {\n${lanes}\n  ret ${vt} %v${w - 1}\n}\n
declare ${e} @${name}(${args.map(() => e).join(', ')})\n`;
}

/** The module text with the vector helpers internal, so opt drops them once inlined. */
export const internalize = (ir: string): string => ir.replace(/^define ([^@\n]*@kiln_v\d+_)/gm, 'define internal $1');

/** Philox-4x32-10 as kiln_math.c's kiln_philox_uniform, on W lanes: word index%4 of block (index/4, counter, 0, 0). */
function philoxBody(L: Lines): string {
  const { i, l } = L;
  const seed = L.op(`shufflevector ${i} ${L.op(`insertelement ${i} undef, i32 %seed, i32 0`)}, ${i} undef, ${i} zeroinitializer`);
  let c0 = L.bin('lshr', i, '%index', L.ic(2)), c1 = '%counter', c2 = 'zeroinitializer', c3 = 'zeroinitializer';
  const hi = (p: string) => L.cast('trunc', l, L.bin('lshr', l, p, L.lc(32)), i);
  for (let r = 0; r < 10; r++) {
    const p0 = L.bin('mul', l, L.cast('zext', i, c0, l), L.lc(0xd2511f53)), p1 = L.bin('mul', l, L.cast('zext', i, c2, l), L.lc(0xcd9e8d57));
    const n0 = L.bin('xor', i, L.bin('xor', i, hi(p1), c1), L.bin('add', i, seed, L.ic(Math.imul(r, 0x9e3779b9))));
    const n2 = L.bin('xor', i, L.bin('xor', i, hi(p0), c3), L.ic(Math.imul(r, 0xbb67ae85)));
    [c0, c1, c2, c3] = [n0, L.cast('trunc', l, p1, i), n2, L.cast('trunc', l, p0, i)];
  }
  const j = L.bin('and', i, '%index', L.ic(3)), is = (k: number) => L.op(`icmp eq ${i} ${j}, ${L.ic(k)}`);
  const word = L.sel(is(1), c1, L.sel(is(2), c2, L.sel(is(3), c3, c0, i), i), i);
  return L.bin('fmul', L.f, L.cast('uitofp', i, L.bin('lshr', i, word, L.ic(8)), L.f), L.fc(5.9604644775390625e-8));
}

/** Straight-line IR text over <W x float> / <W x i32> values, one SSA name per operation. */
class Lines {
  readonly out: string[] = [];
  private n = 0;
  constructor(readonly w: number) {}
  get f(): string { return `<${this.w} x float>`; }
  get i(): string { return `<${this.w} x i32>`; }
  get b(): string { return `<${this.w} x i1>`; }
  get l(): string { return `<${this.w} x i64>`; }
  /** a splat constant; floats written as the double of their float32 value (LLVM's hex form) */
  fc(v: number): string { return `<${Array.from({ length: this.w }, () => `float ${floatHex(v)}`).join(', ')}>`; }
  ic(v: number): string { return `<${Array.from({ length: this.w }, () => `i32 ${v | 0}`).join(', ')}>`; }
  lc(v: number): string {
    if (!Number.isSafeInteger(v)) throw new Error(`llvm: ${v} is not an i64 constant`); // `${v}` would not print it exactly
    return `<${Array.from({ length: this.w }, () => `i64 ${v}`).join(', ')}>`;
  }
  op(text: string): string {
    const name = `%t${this.n++}`;
    this.out.push(`  ${name} = ${text}`);
    return name;
  }
  bin(op: string, t: string, a: string, b: string): string { return this.op(`${op} ${t} ${a}, ${b}`); }
  fma(a: string, b: string, c: string): string { return this.op(`call ${this.f} @llvm.fmuladd.v${this.w}f32(${this.f} ${a}, ${this.f} ${b}, ${this.f} ${c})`); }
  call(fn: string, ...args: string[]): string { return this.op(`call ${this.f} @llvm.${fn}.v${this.w}f32(${args.map((a) => `${this.f} ${a}`).join(', ')})`); }
  cmp(pred: string, a: string, b: string): string { return this.op(`fcmp ${pred} ${this.f} ${a}, ${b}`); }
  sel(c: string, a: string, b: string, t = this.f): string { return this.op(`select ${this.b} ${c}, ${t} ${a}, ${t} ${b}`); }
  cast(op: string, from: string, a: string, to: string): string { return this.op(`${op} ${from} ${a} to ${to}`); }
  /** a polynomial in x, coefficients from the highest power down, by Horner's rule with fused multiply-adds */
  poly(x: string, cs: readonly number[]): string {
    let acc = this.fc(cs[0]!);
    for (const c of cs.slice(1)) acc = this.fma(acc, x, this.fc(c));
    return acc;
  }
}

function floatHex(v: number): string {
  if (Number.isNaN(v)) return '0x7FF8000000000000';
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, Math.fround(v));
  return `0x${b.getBigUint64(0).toString(16).toUpperCase().padStart(16, '0')}`;
}

/** exp(x) on W lanes: x = k ln2 + r (Cody-Waite), a degree-7 polynomial on r, 2^k in two factors (k down to -252). */
function expBody(L: Lines, x: string): string {
  const k = L.call('rint', L.bin('fmul', L.f, x, L.fc(Math.LOG2E)));
  const r = L.fma(k, L.fc(2.12194440e-4), L.fma(k, L.fc(-0.693359375), x));
  const p = L.fma(L.poly(r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]),
    L.bin('fmul', L.f, r, r), L.bin('fadd', L.f, r, L.fc(1)));
  const ki = L.cast('fptosi', L.f, L.call('maxnum', k, L.fc(-252)), L.i);
  const half = L.bin('ashr', L.i, ki, L.ic(1));
  const scale = (e: string) => L.cast('bitcast', L.i, L.bin('shl', L.i, L.bin('add', L.i, e, L.ic(127)), L.ic(23)), L.f);
  const y = L.bin('fmul', L.f, L.bin('fmul', L.f, p, scale(half)), scale(L.bin('sub', L.i, ki, half)));
  // overflow, underflow and NaN
  const big = L.sel(L.cmp('ogt', x, L.fc(88.72283935546875)), L.fc(Infinity), y);
  const small = L.sel(L.cmp('olt', x, L.fc(-104)), L.fc(0), big);
  return L.sel(L.cmp('uno', x, x), x, small);
}

/** log(x) on W lanes: x = 2^e m, m in [sqrt(1/2), sqrt(2)), a degree-9 polynomial on m - 1 (Cephes logf). */
function logBody(L: Lines, x: string): string {
  // subnormal inputs scaled by 2^23 first
  const sub = L.cmp('olt', x, L.fc(1.1754943508222875e-38));
  const xs = L.sel(sub, L.bin('fmul', L.f, x, L.fc(8388608)), x);
  const bits = L.cast('bitcast', L.f, xs, L.i);
  const e0 = L.bin('sub', L.i, L.bin('lshr', L.i, bits, L.ic(23)), L.ic(126));
  const e1 = L.sel(sub, L.bin('sub', L.i, e0, L.ic(23)), e0, L.i);
  const m0 = L.cast('bitcast', L.i, L.bin('or', L.i, L.bin('and', L.i, bits, L.ic(0x007fffff)), L.ic(0x3f000000)), L.f); // [0.5, 1)
  const lo = L.cmp('olt', m0, L.fc(Math.SQRT1_2));
  const e = L.cast('sitofp', L.i, L.sel(lo, L.bin('sub', L.i, e1, L.ic(1)), e1, L.i), L.f);
  const m = L.bin('fsub', L.f, L.sel(lo, L.bin('fadd', L.f, m0, m0), m0), L.fc(1));
  const z = L.bin('fmul', L.f, m, m);
  const p = L.bin('fmul', L.f, L.bin('fmul', L.f, L.poly(m, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
    1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1]), m), z);
  const y = L.fma(z, L.fc(-0.5), L.fma(e, L.fc(-2.12194440e-4), p));
  const r = L.fma(e, L.fc(0.693359375), L.bin('fadd', L.f, m, y));
  // log 0 = -inf, log of a negative = NaN, log inf = inf, NaN stays
  const zero = L.sel(L.cmp('oeq', x, L.fc(0)), L.fc(-Infinity), r);
  const neg = L.sel(L.cmp('olt', x, L.fc(0)), L.fc(NaN), zero);
  const inf = L.sel(L.cmp('oeq', x, L.fc(Infinity)), x, neg);
  return L.sel(L.cmp('uno', x, x), x, inf);
}

/**
 * tanh(x) on W lanes: x + x^3 P(x^2) below 0.625 (Cephes tanhf), else sign(x) (1 - 2 / (exp(2|x|) + 1)). The small
 * form takes x's sign again: for x = -0, x^3 P(0) is +0 (P(0) < 0) and -0 + +0 would be +0.
 */
function tanhBody(L: Lines, x: string): string {
  const a = L.call('fabs', x);
  const z = L.bin('fmul', L.f, x, x);
  const small = L.call('copysign', L.fma(L.bin('fmul', L.f, x, z), L.poly(z, [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1]), x), x);
  const t = expBody(L, L.bin('fmul', L.f, a, L.fc(2)));
  const large = L.call('copysign', L.bin('fsub', L.f, L.fc(1), L.bin('fdiv', L.f, L.fc(2), L.bin('fadd', L.f, t, L.fc(1)))), x);
  return L.sel(L.cmp('olt', a, L.fc(0.625)), small, L.sel(L.cmp('uno', x, x), x, large));
}

/** expf, logf, tanhf on W lanes (within a few ulp of the correctly rounded result: tests/llvm/vector.test.ts), and Philox. */
function vectorMath(w: number): string[] {
  const f = `<${w} x float>`;
  const decls = ['fmuladd(3)', 'rint(1)', 'fabs(1)', 'copysign(2)', 'maxnum(2)'].map((d) => {
    const [name, n] = [d.slice(0, d.indexOf('(')), Number(d.slice(d.indexOf('(') + 1, -1))];
    return `declare ${f} @llvm.${name}.v${w}f32(${Array.from({ length: n }, () => f).join(', ')})\n`;
  });
  const define = (name: string, params: string, body: (L: Lines) => string) => {
    const L = new Lines(w);
    const r = body(L);
    return `define ${f} @${helper(name, w)}(${params}) alwaysinline {\n${L.out.join('\n')}\n  ret ${f} ${r}\n}\n`;
  };
  return [...decls, ...([['expf', expBody], ['logf', logBody], ['tanhf', tanhBody]] as const).map(([name, body]) => define(name, `${f} %x`, (L) => body(L, '%x'))),
    define('philox', `i32 %seed, <${w} x i32> %counter, <${w} x i32> %index`, philoxBody)];
}
