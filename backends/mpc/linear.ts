/**
 * Linear operators on secret shares in Z_2^64. A segment (an affine function of sources, in the
 * normal form of ir/linear.ts) is quantized once: scales are folded into the neighbouring
 * convolution or dense layer, the one weighted primitive per term is scaled by 2^weightFracBits and
 * rounded (a term with none gets an exact 2^weightFracBits), and a term with several weighted stages
 * becomes one dense layer when that is small enough. Applying it to a share is then an integer map
 * over the ring: each element is split into limbs of L bits, the integer primitives run in float64 on
 * the limbs (a convolution over Z_2^64 is a convolution), exact because L is chosen so that every
 * partial sum stays below 2^53, and the limbs are recombined modulo 2^64. No BigInt per multiply-add,
 * no matrix per segment: the cost is a few plaintext convolutions.
 */
import {
  applyChain, denseOfChain, describePrim, primMacs, simplifyChain, weightedPrims, type Affine, type ConvGeom, type Prim,
} from '../../ir/linear.js'
import { sizeOf } from '../../ir/tensor.js'
import { ProtocolError } from './net.js'
import { add, encode, fromLimbs, toLimbs } from './ring.js'
import { MpcLowerError } from './types.js'

/** A quantized segment: integer primitives per term, the bias at fracBits + weightFracBits. */
export interface RingOperator {
  size: number
  /**
   * `exact`: the term has no weighted primitive, so its chain (layout ops and the public scale
   * 2^weightFracBits) is public: without a dealer the client applies it to its mask itself.
   */
  terms: { source: number; prims: Prim[]; exact?: boolean }[]
  bias: BigUint64Array
  /** Limb width: every partial sum of a limb's image stays below 2^53. */
  limbBits: number
}

/** Largest dense layer a term with several weighted stages may be composed into (entries). */
const DENSE_LIMIT = 1 << 24
/** Largest integer weight after quantization. */
const MAX_WEIGHT = 2 ** 40

const isNum = (v: number) => v === v

/** The largest factor by which a primitive can grow a vector's largest magnitude. */
function gain(p: Prim): number {
  switch (p.kind) {
    case 'reshape':
    case 'index':
      return 1
    case 'scale': {
      let m = 0
      for (const v of p.f) if (isNum(v)) m = Math.max(m, Math.abs(v))
      return m
    }
    case 'conv': {
      const per = (p.geom.c / p.geom.group) * p.geom.kh * p.geom.kw
      let m = 0
      for (let o = 0; o < p.geom.m; o++) {
        let s = 0
        for (let t = 0; t < per; t++) s += Math.abs(p.weight[o * per + t])
        m = Math.max(m, s)
      }
      return m
    }
    case 'dense': {
      let m = 0
      for (let n = 0; n < p.n; n++) {
        let s = 0
        for (let k = 0; k < p.k; k++) s += Math.abs(p.weight[k * p.n + n])
        m = Math.max(m, s)
      }
      return m
    }
    case 'sumpool':
      return p.geom.kh * p.geom.kw
    case 'segsum': {
      const count = new Int32Array(sizeOf(p.out))
      let m = 0
      for (const k of p.map) if (k >= 0) m = Math.max(m, ++count[k])
      return m
    }
  }
}

function chainGain(prims: readonly Prim[]): number {
  return prims.reduce((g, p) => g * Math.max(1, gain(p)), 1)
}

/** The widest limbs (at most 32 bits) whose images under all terms stay below 2^53; 0 if none of 8 bits does. */
function limbBitsFor(terms: readonly { prims: readonly Prim[] }[]): number {
  const total = terms.reduce((s, t) => s + chainGain(t.prims), 0)
  const bits = Math.floor(53 - Math.log2(Math.max(1, total)) - 1e-9)
  return bits < 8 ? 0 : Math.min(32, bits)
}

function quantizePrim(p: Prim, scale: number, where: string): Prim {
  const q = (v: number) => {
    const r = Math.round(v * scale)
    if (Math.abs(r) > MAX_WEIGHT) throw new MpcLowerError(`${where}: weight ${v} is too large for the fixed-point format`)
    return r
  }
  if (p.kind === 'conv' || p.kind === 'dense') return { ...p, weight: p.weight.map(q) }
  if (p.kind === 'scale') return { ...p, f: p.f.map((v) => (isNum(v) ? q(v) : NaN)) }
  throw new Error(`internal: ${p.kind} has no weights`)
}

/**
 * Quantize a segment's normal form: weights at `weightFrac` fractional bits, the bias at
 * `frac + weightFrac`. `where` names the segment in errors.
 */
export function quantize(a: Affine, frac: number, weightFrac: number, where: string): RingOperator {
  const size = sizeOf(a.shape)
  const terms = a.terms.map((t) => {
    let prims = simplifyChain(t.prims)
    let weighted = weightedPrims(prims)
    if (weighted.length > 1) {
      const entries = sizeOf(prims[0].in) * size
      if (entries > DENSE_LIMIT)
        throw new MpcLowerError(
          `${where}: the linear run into it has ${weighted.length} weighted stages (${weighted.map(describePrim).join(', then ')}), which the fixed-point backend cannot compose at this size`,
        )
      prims = [denseOfChain(prims)]
      weighted = prims
    }
    const out =
      weighted.length === 0
        ? [...prims, { kind: 'scale', in: a.shape, out: a.shape, f: new Float64Array(size).fill(2 ** weightFrac) } as Prim]
        : prims.map((p) => (p === weighted[0] ? quantizePrim(p, 2 ** weightFrac, where) : p))
    return weighted.length === 0 ? { source: t.source, prims: out, exact: true } : { source: t.source, prims: out }
  })
  const bias = new BigUint64Array(size)
  for (let i = 0; i < size; i++) bias[i] = encode(a.bias[i], frac + weightFrac)
  const limbBits = limbBitsFor(terms)
  if (!limbBits) throw new MpcLowerError(`${where}: the weights are too large for exact ring arithmetic`)
  return { size, terms, bias, limbBits }
}

/** Multiply-adds of one application to one share (all limbs). */
export function ringMacs(op: RingOperator): number {
  const limbs = Math.ceil(64 / op.limbBits)
  return limbs * op.terms.reduce((s, t) => s + t.prims.reduce((u, p) => u + primMacs(p), 0), 0)
}

/** L(x) (+ bias) over Z_2^64, sources by id. */
export function applyRing(op: RingOperator, source: (id: number) => BigUint64Array, withBias: boolean): BigUint64Array {
  const L = op.limbBits
  const nl = Math.ceil(64 / L)
  const limbsOf = new Map<number, Float64Array>()
  const acc = new Float64Array(nl * op.size)
  for (const t of op.terms) {
    let limbs = limbsOf.get(t.source)
    if (!limbs) limbsOf.set(t.source, (limbs = toLimbs(source(t.source), L)))
    const y = applyChain(t.prims, limbs, nl)
    for (let i = 0; i < acc.length; i++) acc[i] += y[i]
  }
  const r = fromLimbs(acc, op.size, L)
  return withBias ? add(r, op.bias) : r
}

/** A chain of public primitives (layout ops, sums, a public scale) applied to one vector over Z_2^64. */
export function applyPublic(prims: readonly Prim[], x: BigUint64Array): BigUint64Array {
  if (prims.length === 0) return x
  const terms = [{ source: 0, prims: [...prims] }]
  const limbBits = limbBitsFor(terms)
  if (!limbBits) throw new Error('internal: a public chain too large for exact ring arithmetic')
  const size = sizeOf(prims[prims.length - 1].out)
  return applyRing({ size, terms, bias: new BigUint64Array(size), limbBits }, () => x, false)
}

/** The weighted primitive of a term (conv, dense or a secret scale), its position; -1 for an exact term. */
export function weightedAt(t: RingOperator['terms'][number]): number {
  if (t.exact) return -1
  return t.prims.findIndex((p) => p.kind === 'conv' || p.kind === 'dense' || p.kind === 'scale')
}

// ---------------------------------------------------------------------------------------------
// the wire form (server -> dealer), checked before anything is allocated from it

interface PrimHead {
  kind: Prim['kind']
  in: number[]
  out: number[]
  geom?: ConvGeom
  k?: number
  n?: number
}

interface OpHead {
  size: number
  limbBits: number
  terms: { source: number; prims: PrimHead[]; exact?: boolean }[]
}

/**
 * The wire forms: `dealer` (the server's operators with their weights, to the dealer) and `public`
 * (to the client when there is no dealer: the same structure without the weights, so the client can
 * apply a term's layout ops to its mask and knows each weighted primitive's geometry; the factors of
 * an exact term's public scale are included, a secret scale's are not).
 */
export type OperatorForm = 'dealer' | 'public'

function arrayOf(p: Prim): Float64Array | Int32Array | undefined {
  if (p.kind === 'index' || p.kind === 'segsum') return p.map
  if (p.kind === 'scale') return p.f
  if (p.kind === 'conv' || p.kind === 'dense') return p.weight
  return undefined
}

export function operatorsToBytes(ops: readonly RingOperator[], form: OperatorForm = 'dealer'): Buffer {
  const pub = form === 'public'
  const blobs: Buffer[] = []
  const heads: OpHead[] = ops.map((op) => {
    if (!pub) blobs.push(Buffer.from(op.bias.buffer, op.bias.byteOffset, op.bias.byteLength))
    return {
      size: op.size,
      limbBits: op.limbBits,
      terms: op.terms.map((t) => ({
        source: t.source,
        ...(pub && t.exact ? { exact: true } : {}),
        prims: t.prims.map((p) => {
          const arr = pub && !t.exact && (p.kind === 'conv' || p.kind === 'dense' || p.kind === 'scale') ? undefined : arrayOf(p)
          if (arr) blobs.push(Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength))
          const h: PrimHead = { kind: p.kind, in: [...p.in], out: [...p.out] }
          if (p.kind === 'conv' || p.kind === 'sumpool') h.geom = p.geom
          if (p.kind === 'dense') Object.assign(h, { k: p.k, n: p.n })
          return h
        }),
      })),
    }
  })
  const json = Buffer.from(JSON.stringify(heads))
  const len = Buffer.alloc(4)
  len.writeUInt32LE(json.length)
  return Buffer.concat([len, json, ...blobs])
}

const MAX_ELEMENTS = 1 << 26
/** Multiply-adds the dealer accepts per image and party, in all. */
const MAX_MACS = 2 ** 36

const count = (v: unknown, lo = 1, hi = MAX_ELEMENTS): v is number => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi
const shapeOk = (s: unknown): s is number[] => Array.isArray(s) && s.length <= 8 && s.every((d) => count(d, 1)) && sizeOf(s as number[]) <= MAX_ELEMENTS

function geomOk(g: ConvGeom | undefined, inSize: number, outSize: number, kind: 'conv' | 'sumpool'): g is ConvGeom {
  if (!g || typeof g !== 'object') return false
  const ints = [g.c, g.h, g.w, g.m, g.oh, g.ow, g.kh, g.kw, g.group, ...(g.strides ?? []), ...(g.dilations ?? [])]
  if (!ints.every((v) => count(v, 1, 1 << 16)) || !Array.isArray(g.pads) || g.pads.length !== 4 || !g.pads.every((v) => count(v, 0, 1 << 16))) return false
  if (g.strides.length !== 2 || g.dilations.length !== 2 || g.c % g.group !== 0 || g.m % g.group !== 0) return false
  const dim = (x: number, k: number, s: number, d: number, p0: number, p1: number) => Math.floor((x + p0 + p1 - (k - 1) * d - 1) / s) + 1
  if (kind === 'conv' && (dim(g.h, g.kh, g.strides[0], g.dilations[0], g.pads[0], g.pads[2]) !== g.oh || dim(g.w, g.kw, g.strides[1], g.dilations[1], g.pads[1], g.pads[3]) !== g.ow)) return false
  if (kind === 'sumpool' && (g.m !== g.c || g.oh > g.h + g.pads[0] + g.pads[2] || g.ow > g.w + g.pads[1] + g.pads[3])) return false
  const images = inSize / (g.c * g.h * g.w)
  return Number.isInteger(images) && images * g.m * g.oh * g.ow === outSize && g.kh * g.kw * (g.c / g.group) * g.m <= MAX_ELEMENTS
}

/**
 * Parse the operators a server sent for its schedule's segments (`segments[j]`: its size and the
 * sizes of its sources by id). Every shape, index, geometry, weight and limb width is checked; a
 * malformed or oversized description is a ProtocolError, never an allocation beyond the frame.
 */
export function operatorsFromBytes(buf: Buffer, segments: readonly { size: number; sources: readonly number[] }[], sourceSize: (id: number) => number, form: OperatorForm = 'dealer'): RingOperator[] {
  const pub = form === 'public'
  const bad = (why: string) => new ProtocolError(`malformed linear operators: ${why}`)
  if (buf.length < 4) throw bad('too short')
  const jl = buf.readUInt32LE(0)
  if (4 + jl > buf.length) throw bad('truncated header')
  let heads: OpHead[]
  try {
    heads = JSON.parse(buf.subarray(4, 4 + jl).toString('utf8')) as OpHead[]
  } catch {
    throw bad('unreadable header')
  }
  if (!Array.isArray(heads) || heads.length !== segments.length) throw bad('not one per segment')
  let o = 4 + jl
  const take = (bytes: number): Buffer => {
    if (o + bytes > buf.length) throw bad('truncated data')
    const b = buf.subarray(o, o + bytes)
    o += bytes
    return b
  }
  const f64 = (n: number) => {
    const out = new Float64Array(n)
    Buffer.from(out.buffer).set(take(8 * n))
    return out
  }
  const i32 = (n: number) => {
    const out = new Int32Array(n)
    Buffer.from(out.buffer).set(take(4 * n))
    return out
  }
  let macs = 0
  const ops = heads.map((h, j) => {
    const seg = segments[j]
    if (!h || typeof h !== 'object' || h.size !== seg.size || !Array.isArray(h.terms) || h.terms.length > 64 || !count(h.limbBits, 8, 32)) throw bad(`segment ${j}`)
    const bias = new BigUint64Array(pub ? 0 : seg.size)
    if (!pub) Buffer.from(bias.buffer).set(take(8 * seg.size))
    const terms = h.terms.map((t) => {
      if (!t || !seg.sources.includes(t.source) || !Array.isArray(t.prims) || t.prims.length > 16) throw bad(`segment ${j}: term`)
      if (t.exact !== undefined && (!pub || t.exact !== true)) throw bad(`segment ${j}: term`)
      // public form: the weights of a term that has them stay with the server (empty arrays here)
      const secret = pub && !t.exact
      let size = sourceSize(t.source)
      const prims = t.prims.map((p): Prim => {
        if (!p || !shapeOk(p.in) || !shapeOk(p.out) || sizeOf(p.in) !== size) throw bad(`segment ${j}: primitive shapes`)
        const nIn = sizeOf(p.in)
        const nOut = sizeOf(p.out)
        size = nOut
        let prim: Prim
        switch (p.kind) {
          case 'reshape':
            if (nIn !== nOut) throw bad(`segment ${j}: reshape`)
            prim = { kind: 'reshape', in: p.in, out: p.out }
            break
          case 'index': {
            const map = i32(nOut)
            if (!map.every((k) => k >= -1 && k < nIn)) throw bad(`segment ${j}: index map`)
            prim = { kind: 'index', in: p.in, out: p.out, map }
            break
          }
          case 'segsum': {
            const map = i32(nIn)
            if (!map.every((k) => k >= -1 && k < nOut)) throw bad(`segment ${j}: sum map`)
            prim = { kind: 'segsum', in: p.in, out: p.out, map }
            break
          }
          case 'scale': {
            if (nIn !== nOut) throw bad(`segment ${j}: scale`)
            const f = secret ? new Float64Array(0) : f64(nOut)
            if (!f.every((v) => !isNum(v) || (Number.isInteger(v) && Math.abs(v) <= MAX_WEIGHT))) throw bad(`segment ${j}: scale factors`)
            prim = { kind: 'scale', in: p.in, out: p.out, f }
            break
          }
          case 'conv':
          case 'sumpool': {
            if (!geomOk(p.geom, nIn, nOut, p.kind)) throw bad(`segment ${j}: ${p.kind} geometry`)
            const g = p.geom!
            if (p.kind === 'sumpool') prim = { kind: 'sumpool', in: p.in, out: p.out, geom: g }
            else {
              const weight = secret ? new Float64Array(0) : f64(g.m * (g.c / g.group) * g.kh * g.kw)
              if (!weight.every((v) => Number.isInteger(v) && Math.abs(v) <= MAX_WEIGHT)) throw bad(`segment ${j}: conv weights`)
              prim = { kind: 'conv', in: p.in, out: p.out, geom: g, weight }
            }
            break
          }
          case 'dense': {
            if (!count(p.k) || !count(p.n) || nIn % p.k !== 0 || (nIn / p.k) * p.n !== nOut || p.k * p.n > MAX_ELEMENTS) throw bad(`segment ${j}: dense shape`)
            const weight = secret ? new Float64Array(0) : f64(p.k * p.n)
            if (!weight.every((v) => Number.isInteger(v) && Math.abs(v) <= MAX_WEIGHT)) throw bad(`segment ${j}: dense weights`)
            prim = { kind: 'dense', in: p.in, out: p.out, k: p.k, n: p.n, weight }
            break
          }
          default:
            throw bad(`segment ${j}: unknown primitive`)
        }
        macs += primMacs(prim) * Math.ceil(64 / h.limbBits)
        if (macs > MAX_MACS) throw bad('too many multiply-adds')
        return prim
      })
      if (size !== seg.size) throw bad(`segment ${j}: the chain does not end at the segment`)
      if (t.exact && !prims.every((p) => p.kind !== 'conv' && p.kind !== 'dense')) throw bad(`segment ${j}: an exact term with weights`)
      return t.exact ? { source: t.source, prims, exact: true } : { source: t.source, prims }
    })
    if (!pub && limbBitsFor(terms) < h.limbBits) throw bad(`segment ${j}: limbs too wide for exact arithmetic`)
    return { size: seg.size, terms, bias, limbBits: h.limbBits }
  })
  if (o !== buf.length) throw bad('trailing bytes')
  return ops
}
