// Parser for the graph text format written by printer.ts; errors name the line.
import { Builder, type Graph, type NamedNode, type Node, type Update } from './graph.js';
import { type AttrValue, GroupOp, attrsOf, isOp } from './ops.js';
import { type TensorType, dtypeFromShort } from './types.js';

export class ParseError extends Error {
  override name = 'ParseError';
}

/** Recursive-descent reader for attribute values: numbers, nan/inf, true/false, "strings", [lists]. */
class AttrReader {
  pos = 0;
  constructor(readonly text: string) {}

  private skip(): void {
    while (this.text[this.pos] === ' ') this.pos++;
  }

  value(): AttrValue {
    this.skip();
    const rest = this.text.slice(this.pos);
    if (rest.startsWith('[')) {
      this.pos++;
      const items: AttrValue[] = [];
      this.skip();
      if (this.text[this.pos] === ']') { this.pos++; return items; }
      for (;;) {
        items.push(this.value());
        this.skip();
        const c = this.text[this.pos++];
        if (c === ']') return items;
        if (c !== ',') throw new ParseError(`expected ',' or ']' at column ${this.pos}`);
      }
    }
    if (rest.startsWith('"')) {
      const m = /^"(?:[^"\\]|\\.)*"/.exec(rest);
      if (!m) throw new ParseError('unterminated string');
      this.pos += m[0].length;
      return JSON.parse(m[0]) as string;
    }
    const m = /^(true|false|-?inf|nan|-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)/.exec(rest);
    if (!m) throw new ParseError(`bad attribute value at '${rest.slice(0, 20)}'`);
    this.pos += m[0].length;
    const t = m[0];
    if (t === 'true' || t === 'false') return t === 'true';
    if (t === 'nan') return NaN;
    if (t.endsWith('inf')) return t.startsWith('-') ? -Infinity : Infinity;
    return Number(t);
  }

  attrs(): Record<string, AttrValue> {
    const out: Record<string, AttrValue> = {};
    for (;;) {
      this.skip();
      const m = /^(\w+)=/.exec(this.text.slice(this.pos));
      if (!m) throw new ParseError(`expected name=value at '${this.text.slice(this.pos, this.pos + 20)}'`);
      this.pos += m[0].length;
      out[m[1]!] = this.value();
      this.skip();
      const c = this.text[this.pos++];
      if (c === '}') return out;
      if (c !== ',') throw new ParseError(`expected ',' or '}' in attributes`);
    }
  }
}

function parseType(s: string): TensorType {
  const m = /^(\w+)\[([\d,]*)\]$/.exec(s.trim());
  const dtype = m && dtypeFromShort(m[1]!);
  if (!m || !dtype) throw new ParseError(`bad type '${s}'`);
  return { dtype, shape: m[2] ? m[2].split(',').map(Number) : [] };
}

/** Parses graph text. Every op is re-built through the Builder, so types are re-inferred and checked. */
export function parseGraph(text: string): Graph {
  const lines = text.split('\n');
  const b = new Builder();
  const vals = new Map<string, Node>();
  const outputs: NamedNode[] = [];
  const updates: Update[] = [];
  let name: string | undefined;
  const ref = (r: string): Node => {
    const n = vals.get(r.trim());
    if (!n) throw new ParseError(`undefined value ${r.trim()}`);
    return n;
  };
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line === '}' || line.startsWith('//')) return;
    try {
      let m: RegExpExecArray | null;
      if ((m = /^graph @([\w.\-/]+) \{$/.exec(line))) { name = m[1]!; return; }
      if ((m = /^output ("(?:[^"\\]|\\.)*") = (%\d+)$/.exec(line))) {
        outputs.push({ name: JSON.parse(m[1]!) as string, node: ref(m[2]!) });
        return;
      }
      if ((m = /^update (%\d+) = (%\d+)$/.exec(line))) { updates.push({ param: ref(m[1]!), value: ref(m[2]!) }); return; }
      m = /^(%\d+) = (\w+)((?: %\d+,?)*)(?: \{(.*)\})? : (\S+)$/.exec(line);
      if (!m) throw new ParseError(`cannot read '${line}'`);
      const [, id, op, srcText, attrText, typeText] = m as unknown as [string, string, string, string, string | undefined, string];
      if (vals.has(id)) throw new ParseError(`${id} is defined twice`);
      if (!isOp(op)) throw new ParseError(`unknown op '${op}'`);
      const src = srcText.trim() ? srcText.split(',').map(ref) : [];
      const attrs = attrText ? new AttrReader(attrText + '}').attrs() : {};
      // a splat constant may be written with its one value: value=c for value=[c]
      if (op === 'const' && typeof attrs['value'] === 'number') attrs['value'] = [attrs['value']];
      const type = parseType(typeText);
      const leaf = { op, attrs };
      if (GroupOp.Leaf.has(op) && src.length) throw new ParseError(`${op} is a leaf and takes no operands`);
      let node: Node;
      if (op === 'input') node = b.input(attrsOf(leaf, op).name, type);
      else if (op === 'param') node = b.param(attrsOf(leaf, op).name, type);
      else if (op === 'const') node = b.constant(attrsOf(leaf, op).value, type.dtype, type.shape);
      else if (op === 'iota') node = b.iota(type.shape, attrsOf(leaf, op).axis);
      else node = b.emit(op, src, attrs);
      const got = `${node.type.dtype}[${node.type.shape.join(',')}]`, want = `${type.dtype}[${type.shape.join(',')}]`;
      if (got !== want) throw new ParseError(`${op} has type ${got}, but the text says ${want}`);
      vals.set(id, node);
    } catch (e) {
      throw new ParseError(`line ${i + 1}: ${(e as Error).message}`);
    }
  });
  if (name === undefined) throw new ParseError('line 1: expected "graph @name {"');
  return b.finish(name, outputs, updates);
}
