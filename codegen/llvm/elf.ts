// Section sizes and undefined symbols of an ELF object (32 or 64-bit, little-endian), for the sizes in manifest.json.

export interface ElfSizes {
  /** bytes of executable sections */
  readonly code: number;
  /** bytes of read-only data (flash on a microcontroller) */
  readonly rodata: number;
  /** bytes of initialized writable data (flash and RAM) */
  readonly data: number;
  /** bytes of zeroed writable data (RAM) */
  readonly bss: number;
  /** the symbols the object needs from elsewhere (libm's expf, the runtime's kiln_parallel_for, ...), sorted */
  readonly undefined: string[];
}

const SHF_WRITE = 1, SHF_ALLOC = 2, SHF_EXECINSTR = 4, SHT_SYMTAB = 2, SHT_NOBITS = 8;

export function elfSizes(elf: Uint8Array, what = 'object'): ElfSizes {
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  if (b.length < 52 || b.toString('latin1', 0, 4) !== '\x7fELF' || b[5] !== 1) throw new Error(`${what} is not a little-endian ELF file`);
  const wide = b[4] === 2;
  const word = (at: number) => (wide ? Number(b.readBigUInt64LE(at)) : b.readUInt32LE(at));
  const shoff = word(wide ? 0x28 : 0x20), shentsize = b.readUInt16LE(wide ? 0x3a : 0x2e), shnum = b.readUInt16LE(wide ? 0x3c : 0x30);
  const sections = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(at + 4), flags: word(at + 8), offset: word(at + (wide ? 0x18 : 0x10)), size: word(at + (wide ? 0x20 : 0x14)),
      link: b.readUInt32LE(at + (wide ? 0x28 : 0x18)), entsize: word(at + (wide ? 0x38 : 0x24)),
    };
  });
  let code = 0, rodata = 0, data = 0, bss = 0;
  const undefined: string[] = [];
  for (const s of sections) {
    if (s.flags & SHF_ALLOC) {
      if (s.type === SHT_NOBITS) bss += s.size;
      else if (s.flags & SHF_EXECINSTR) code += s.size;
      else if (s.flags & SHF_WRITE) data += s.size;
      else rodata += s.size;
    }
    if (s.type !== SHT_SYMTAB) continue;
    const names = sections[s.link]!;
    for (let at = s.offset + s.entsize; at < s.offset + s.size; at += s.entsize) {
      const name = b.readUInt32LE(at), info = b[at + (wide ? 4 : 12)]!, shndx = b.readUInt16LE(at + (wide ? 6 : 14));
      if (shndx !== 0 || name === 0 || info >> 4 === 0) continue; // defined, unnamed or local
      const from = names.offset + name;
      undefined.push(b.toString('latin1', from, b.indexOf(0, from)));
    }
  }
  return { code, rodata, data, bss, undefined: undefined.sort() };
}
