'use strict'
// Reads (and trims) the dynamic section of a 64-bit little-endian ELF file: the
// NEEDED libraries, SONAME and RUNPATH/RPATH. Enough for packaging checks; no
// patchelf needed.
const { closeSync, openSync, readFileSync, writeSync } = require('node:fs')

const PT_LOAD = 1
const PT_DYNAMIC = 2
const DT = { NULL: 0, NEEDED: 1, STRTAB: 5, SONAME: 14, RPATH: 15, RUNPATH: 29 }

function parse(buf, file) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) {
    throw new Error(`${file}: not a 64-bit little-endian ELF file`)
  }
  const phoff = Number(buf.readBigUInt64LE(0x20))
  const phentsize = buf.readUInt16LE(0x36)
  const phnum = buf.readUInt16LE(0x38)
  const segments = []
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize
    segments.push({
      type: buf.readUInt32LE(o),
      offset: Number(buf.readBigUInt64LE(o + 8)),
      vaddr: Number(buf.readBigUInt64LE(o + 16)),
      filesz: Number(buf.readBigUInt64LE(o + 32)),
    })
  }
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC)
  if (!dynamic) throw new Error(`${file}: no dynamic section (a static executable?)`)
  const entries = []
  for (let o = dynamic.offset; o < dynamic.offset + dynamic.filesz; o += 16) {
    const tag = Number(buf.readBigInt64LE(o))
    if (tag === DT.NULL) break
    entries.push({ tag, value: Number(buf.readBigUInt64LE(o + 8)) })
  }
  const strtabAddr = entries.find((e) => e.tag === DT.STRTAB)?.value
  const load = segments.find((s) => s.type === PT_LOAD && strtabAddr >= s.vaddr && strtabAddr < s.vaddr + s.filesz)
  if (strtabAddr === undefined || !load) throw new Error(`${file}: dynamic string table not found`)
  const strtab = strtabAddr - load.vaddr + load.offset
  const str = (off) => {
    const start = strtab + off
    return { offset: start, text: buf.toString('latin1', start, buf.indexOf(0, start)) }
  }
  return { entries, str }
}

/**
 * @returns {{ needed: string[], soname: string | null, runpath: string | null, rpath: string | null }}
 */
function readDynamic(file) {
  const { entries, str } = parse(readFileSync(file), file)
  const one = (tag) => {
    const e = entries.find((x) => x.tag === tag)
    return e ? str(e.value).text : null
  }
  return {
    needed: entries.filter((e) => e.tag === DT.NEEDED).map((e) => str(e.value).text),
    soname: one(DT.SONAME),
    runpath: one(DT.RUNPATH),
    rpath: one(DT.RPATH),
  }
}

/**
 * Keeps only the first entry of the RUNPATH (or RPATH): the ':' after it becomes the
 * string's end. One byte changes; no string moves, so nothing else can break.
 * @returns {string} the search path now in the file
 */
function keepFirstSearchPath(file) {
  const { entries, str } = parse(readFileSync(file), file)
  const e = entries.find((x) => x.tag === DT.RUNPATH) ?? entries.find((x) => x.tag === DT.RPATH)
  if (!e) throw new Error(`${file}: has no RUNPATH`)
  const { offset, text } = str(e.value)
  const colon = text.indexOf(':')
  if (colon < 0) return text
  const fd = openSync(file, 'r+')
  try {
    writeSync(fd, Buffer.from([0]), 0, 1, offset + colon)
  } finally {
    closeSync(fd)
  }
  return text.slice(0, colon)
}

/** Names of the dynamic symbols `file` imports (undefined in its .dynsym). */
function importedSymbols(file) {
  const buf = readFileSync(file)
  parse(buf, file) // validates the header
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  const section = (i) => {
    const o = shoff + i * shentsize
    return {
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 24)),
      size: Number(buf.readBigUInt64LE(o + 32)),
      link: buf.readUInt32LE(o + 40),
    }
  }
  const SHT_DYNSYM = 11
  for (let i = 0; i < shnum; i++) {
    const dynsym = section(i)
    if (dynsym.type !== SHT_DYNSYM) continue
    const strtab = section(dynsym.link)
    const names = []
    for (let o = dynsym.offset + 24; o < dynsym.offset + dynsym.size; o += 24) {
      if (buf.readUInt16LE(o + 6) !== 0) continue // st_shndx != SHN_UNDEF: defined here
      const start = strtab.offset + buf.readUInt32LE(o)
      names.push(buf.toString('latin1', start, buf.indexOf(0, start)))
    }
    return names
  }
  throw new Error(`${file}: no .dynsym section`)
}

module.exports = { readDynamic, keepFirstSearchPath, importedSymbols }
