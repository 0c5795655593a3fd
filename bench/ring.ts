/**
 * Elements per second of Z_2^64 kernels on 32-bit words (Int32Array views of the BigUint64Array
 * buffer) against BigInt loops over the elements (as ring.ts was written before; copies kept here),
 * measured in the same run at n = 65,536 and 1,048,576. The word kernels are ring.ts's for
 * truncShare, encodeArray, decodeArray, toLimbs and fromLimbs. For add, sub, mul and mulAdd
 * ring.ts keeps BigInt loops, because TurboFan lowers BigInt +, - and * stored into a BigUint64Array
 * to 64-bit machine operations, which beat the word versions (Math.imul on 16-bit halves for
 * products) kept here. The last column says which one ring.ts uses. Each pair is checked for
 * equal results before it is timed. Run: npx vite-node bench/ring.ts [--quick]
 */
import { cpus } from 'node:os'
import { decodeArray, encodeArray, fromLimbs, Prg, toLimbs, truncShare, truncShareBig } from '../backends/mpc/ring.js'
import { timeIt } from './timing.js'

// ---- word versions of the kernels ring.ts keeps as BigInt loops ----

const words = (x: BigUint64Array) => new Int32Array(x.buffer, x.byteOffset, 2 * x.length)

function addWords(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const n = a.length
  const out = new BigUint64Array(n)
  const A = words(a)
  const B = words(b)
  const O = words(out)
  for (let j = 0; j < 2 * n; j += 2) {
    const al = A[j]
    const bl = B[j]
    const lo = (al + bl) | 0
    O[j] = lo
    O[j + 1] = (A[j + 1] + B[j + 1] + (((al & bl) | ((al | bl) & ~lo)) >>> 31)) | 0 // carry from the sign bits
  }
  return out
}

function subWords(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const n = a.length
  const out = new BigUint64Array(n)
  const A = words(a)
  const B = words(b)
  const O = words(out)
  for (let j = 0; j < 2 * n; j += 2) {
    const al = A[j]
    const bl = B[j]
    const lo = (al - bl) | 0
    O[j] = lo
    O[j + 1] = (A[j + 1] - B[j + 1] - (((~al & bl) | (~(al ^ bl) & lo)) >>> 31)) | 0 // borrow
  }
  return out
}

/** The high word of al * bl (unsigned) plus the cross terms ah * bl + al * bh, modulo 2^32. */
function mulHi(al: number, ah: number, bl: number, bh: number): number {
  const a0 = al & 0xffff
  const a1 = al >>> 16
  const b0 = bl & 0xffff
  const b1 = bl >>> 16
  const p01 = Math.imul(a0, b1)
  const p10 = Math.imul(a1, b0)
  const mid = (Math.imul(a0, b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff)
  return (Math.imul(a1, b1) + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh)) | 0
}

function mulWords(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const n = a.length
  const out = new BigUint64Array(n)
  const A = words(a)
  const B = words(b)
  const O = words(out)
  for (let j = 0; j < 2 * n; j += 2) {
    const al = A[j]
    const bl = B[j]
    O[j] = Math.imul(al, bl)
    O[j + 1] = mulHi(al, A[j + 1], bl, B[j + 1])
  }
  return out
}

function mulAddWords(acc: BigUint64Array, a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const n = a.length
  const A = words(a)
  const B = words(b)
  const C = words(acc)
  for (let j = 0; j < 2 * n; j += 2) {
    const al = A[j]
    const bl = B[j]
    const pl = Math.imul(al, bl)
    const ph = mulHi(al, A[j + 1], bl, B[j + 1])
    const cl = C[j]
    const lo = (cl + pl) | 0
    C[j] = lo
    C[j + 1] = (C[j + 1] + ph + (((cl & pl) | ((cl | pl) & ~lo)) >>> 31)) | 0
  }
  return acc
}

const quick = process.argv.includes('--quick')

// ---- BigInt references ----

function addRef(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i]
  return out
}

function subRef(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i]
  return out
}

function mulRef(a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i]
  return out
}

function mulAddRef(acc: BigUint64Array, a: BigUint64Array, b: BigUint64Array): BigUint64Array {
  for (let i = 0; i < a.length; i++) acc[i] += a[i] * b[i]
  return acc
}


function encodeArrayRef(v: ArrayLike<number>, frac: number): BigUint64Array {
  const out = new BigUint64Array(v.length)
  for (let i = 0; i < v.length; i++) out[i] = BigInt.asUintN(64, BigInt(Math.round(v[i] * 2 ** frac)))
  return out
}

function decodeArrayRef(u: BigUint64Array, frac: number): Float64Array {
  const out = new Float64Array(u.length)
  for (let i = 0; i < u.length; i++) out[i] = Number(BigInt.asIntN(64, u[i])) / 2 ** frac
  return out
}

function toLimbsRef(x: BigUint64Array, bits: number): Float64Array {
  const L = Math.ceil(64 / bits)
  const n = x.length
  const out = new Float64Array(L * n)
  const mask = (1n << BigInt(bits)) - 1n
  for (let l = 0; l < L; l++) {
    const s = BigInt(bits * l)
    for (let i = 0; i < n; i++) out[l * n + i] = Number((x[i] >> s) & mask)
  }
  return out
}

function fromLimbsRef(limbs: Float64Array, n: number, bits: number): BigUint64Array {
  const L = Math.ceil(64 / bits)
  const out = new BigUint64Array(n)
  for (let i = 0; i < n; i++) {
    let s = 0n
    for (let l = 0; l < L; l++) s += BigInt(limbs[l * n + i]) << BigInt(bits * l)
    out[i] = s
  }
  return out
}

// ---- timing ----


function same(x: ArrayLike<unknown>, y: ArrayLike<unknown>): boolean {
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false
  return true
}

const fmt = (perSec: number) => (perSec >= 1e9 ? `${(perSec / 1e9).toFixed(2)} G` : perSec >= 1e6 ? `${(perSec / 1e6).toFixed(1)} M` : `${(perSec / 1e3).toFixed(0)} k`)

function main(): void {
  const minMs = quick ? 100 : 600
  console.log(`ring kernels, ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; elements per second (best of 5 rounds)\n`)
  const rows: string[][] = [['op', 'n', 'BigInt', 'words', 'words/BigInt', 'ring.ts']]
  for (const n of [65_536, 1_048_576]) {
    const prg = new Prg(Buffer.alloc(16, 7), 'bench')
    const a = prg.ring(n)
    const b = prg.ring(n)
    const reals = Float64Array.from({ length: n }, (_, i) => Math.sin(i) * 1000)
    const l16 = toLimbs(a, 16)
    // limbs as after an integer linear map: signed, up to 2^40 in magnitude
    const mixed = Float64Array.from(l16, (v, k) => (k % 3 === 0 ? -v : v) * 12345 + (k % 7) * 2 ** 38)
    const l20 = Float64Array.from(toLimbs(a, 20), (v, k) => (k % 2 ? -v : v) * 999)
    const c1 = prg.ring(n)
    const c2 = c1.slice()
    // [name, BigInt version, word version, whether ring.ts uses the word version]
    const cases: [string, () => ArrayLike<unknown>, () => ArrayLike<unknown>, boolean][] = [
      ['add', () => addRef(a, b), () => addWords(a, b), false],
      ['sub', () => subRef(a, b), () => subWords(a, b), false],
      ['mul', () => mulRef(a, b), () => mulWords(a, b), false],
      ['mulAdd', () => mulAddRef(c1, a, b), () => mulAddWords(c2, a, b), false],
      ['truncShare p0', () => truncShareBig(a, 13, 0), () => truncShare(a, 13, 0), true],
      ['truncShare p1', () => truncShareBig(a, 13, 1), () => truncShare(a, 13, 1), true],
      ['encodeArray', () => encodeArrayRef(reals, 13), () => encodeArray(reals, 13), true],
      ['decodeArray', () => decodeArrayRef(a, 26), () => decodeArray(a, 26), true],
      ['toLimbs 16', () => toLimbsRef(a, 16), () => toLimbs(a, 16), true],
      ['toLimbs 20', () => toLimbsRef(a, 20), () => toLimbs(a, 20), true],
      ['fromLimbs 16', () => fromLimbsRef(mixed, n, 16), () => fromLimbs(mixed, n, 16), true],
      ['fromLimbs 20', () => fromLimbsRef(l20, n, 20), () => fromLimbs(l20, n, 20), true],
    ]
    for (const [name, ref, fast, usesWords] of cases) {
      if (!same(ref(), fast())) throw new Error(`${name}: results differ at n = ${n}`)
      const tRef = timeIt(ref, minMs)
      const tFast = timeIt(fast, minMs)
      rows.push([name, n.toLocaleString('en-US'), fmt((n / tRef) * 1e3), fmt((n / tFast) * 1e3), `${(tRef / tFast).toFixed(2)}x`, usesWords ? 'words' : 'BigInt'])
    }
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  for (const [k, r] of rows.entries()) {
    console.log(r.map((s, c) => (c === 0 ? s.padEnd(w[c]) : s.padStart(w[c]))).join('  '))
    if (k === 0) console.log(w.map((x) => '-'.repeat(x)).join('  '))
  }
}

main()
