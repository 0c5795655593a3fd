/**
 * Declared primitives (ir/linear.ts) applied to sparse maps by structure. A pending affine value of
 * the lowering is `sum_t M_t x_t + b` with `M_t` stored by columns (one column per element of
 * ciphertext group `x_t`, rows = the value's elements). An affine op whose declared term for input i
 * is the chain `p_1 ... p_n` turns each of input i's maps into `P_n ... P_1 M`. Each product here is
 * computed from the primitive's structure, one column of M at a time: every nonzero `(k, v)` of the
 * column is scattered to the output rows that read input element `k` (the taps of a convolution or
 * pooling window, the rows of an index map, the outputs of a dense layer), weighted, into a dense
 * accumulator that remembers which rows it touched. Cost O(nnz(M) * fan-out), no op evaluation.
 */
import { sizeOf } from '../../ir/tensor.js'
import type { ConvGeom, Prim } from '../../ir/linear.js'
import type { SparseCols } from './layout.js'

/** Sparse columns built one at a time through a dense accumulator (rows sorted, exact zeros dropped). */
export class ColumnBuilder {
  private readonly acc: Float64Array
  private readonly stamp: Int32Array
  private touched: Int32Array
  private nt = 0
  private col = 0
  private readonly start: Int32Array
  private idx: Int32Array
  private val: Float64Array
  private nnz = 0

  constructor(
    readonly rows: number,
    readonly cols: number,
    expected = cols,
  ) {
    this.acc = new Float64Array(rows)
    this.stamp = new Int32Array(rows).fill(-1)
    this.touched = new Int32Array(Math.min(rows, 1024))
    this.start = new Int32Array(cols + 1)
    const cap = Math.max(16, expected)
    this.idx = new Int32Array(cap)
    this.val = new Float64Array(cap)
  }

  /** acc[row] += v in the current column. */
  add(row: number, v: number): void {
    if (this.stamp[row] !== this.col) {
      this.stamp[row] = this.col
      this.acc[row] = v
      if (this.nt === this.touched.length) {
        const t = new Int32Array(Math.min(this.rows, this.touched.length * 2))
        t.set(this.touched)
        this.touched = t
      }
      this.touched[this.nt++] = row
    } else this.acc[row] += v
  }

  /** Close the current column and start the next one. */
  next(): void {
    const t = this.touched.subarray(0, this.nt)
    if (this.nt > 1) t.sort()
    if (this.nnz + this.nt > this.idx.length) {
      const cap = Math.max(this.idx.length * 2, this.nnz + this.nt)
      const idx = new Int32Array(cap)
      idx.set(this.idx.subarray(0, this.nnz))
      const val = new Float64Array(cap)
      val.set(this.val.subarray(0, this.nnz))
      this.idx = idx
      this.val = val
    }
    for (let q = 0; q < this.nt; q++) {
      const r = t[q]
      const v = this.acc[r]
      if (v === 0) continue
      this.idx[this.nnz] = r
      this.val[this.nnz] = v
      this.nnz++
    }
    this.nt = 0
    this.col++
    this.start[this.col] = this.nnz
  }

  finish(): SparseCols {
    if (this.col !== this.cols) throw new Error(`sparse map: ${this.col} of ${this.cols} columns built`)
    return { rows: this.rows, cols: this.cols, start: this.start, idx: this.idx.slice(0, this.nnz), val: this.val.slice(0, this.nnz) }
  }
}

/** `emit(row, weight)` for every output row that reads input element k of the primitive. */
type Scatter = (k: number, v: number, out: ColumnBuilder) => void

/** Per input coordinate along one axis, the (tap, output coordinate) pairs that read it. */
function axisTaps(n: number, out: number, k: number, stride: number, pad: number, dil: number): { start: Int32Array; tap: Int32Array; pos: Int32Array } {
  const start = new Int32Array(n + 1)
  const tap: number[] = []
  const pos: number[] = []
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      const s = i + pad - t * dil
      if (s < 0 || s % stride !== 0) continue
      const o = s / stride
      if (o < out) {
        tap.push(t)
        pos.push(o)
      }
    }
    start[i + 1] = tap.length
  }
  return { start, tap: Int32Array.from(tap), pos: Int32Array.from(pos) }
}

function windowTaps(g: ConvGeom) {
  return {
    h: axisTaps(g.h, g.oh, g.kh, g.strides[0], g.pads[0], g.dilations[0]),
    w: axisTaps(g.w, g.ow, g.kw, g.strides[1], g.pads[1], g.dilations[1]),
  }
}

function convScatter(g: ConvGeom, weight: Float64Array): Scatter {
  const { h: th, w: tw } = windowTaps(g)
  const cg = g.c / g.group
  const mg = g.m / g.group
  const inImg = g.c * g.h * g.w
  const outImg = g.m * g.oh * g.ow
  const plane = g.h * g.w
  return (k, v, out) => {
    const b = Math.floor(k / inImg)
    const r = k - b * inImg
    const c = Math.floor(r / plane)
    const ih = Math.floor((r - c * plane) / g.w)
    const iw = r - c * plane - ih * g.w
    const grp = Math.floor(c / cg)
    const ci = c - grp * cg
    for (let m = grp * mg; m < (grp + 1) * mg; m++) {
      const wBase = (m * cg + ci) * g.kh
      const oBase = b * outImg + m * g.oh * g.ow
      for (let a = th.start[ih]; a < th.start[ih + 1]; a++) {
        const wRow = (wBase + th.tap[a]) * g.kw
        const oRow = oBase + th.pos[a] * g.ow
        for (let e = tw.start[iw]; e < tw.start[iw + 1]; e++) {
          const w = weight[wRow + tw.tap[e]]
          if (w !== 0) out.add(oRow + tw.pos[e], w * v)
        }
      }
    }
  }
}

function sumpoolScatter(g: ConvGeom): Scatter {
  const { h: th, w: tw } = windowTaps(g)
  const plane = g.h * g.w
  return (k, v, out) => {
    const pl = Math.floor(k / plane)
    const ih = Math.floor((k - pl * plane) / g.w)
    const iw = k - pl * plane - ih * g.w
    const oBase = pl * g.oh * g.ow
    for (let a = th.start[ih]; a < th.start[ih + 1]; a++) {
      const oRow = oBase + th.pos[a] * g.ow
      for (let e = tw.start[iw]; e < tw.start[iw + 1]; e++) out.add(oRow + tw.pos[e], v)
    }
  }
}

/** Output rows of an index map by the input element they read (out[i] = in[map[i]]). */
function indexScatter(map: Int32Array, nIn: number): Scatter {
  const start = new Int32Array(nIn + 1)
  for (let i = 0; i < map.length; i++) if (map[i] >= 0) start[map[i] + 1]++
  for (let k = 0; k < nIn; k++) start[k + 1] += start[k]
  const rows = new Int32Array(start[nIn])
  const fill = start.slice(0, nIn)
  for (let i = 0; i < map.length; i++) if (map[i] >= 0) rows[fill[map[i]]++] = i
  return (k, v, out) => {
    for (let q = start[k]; q < start[k + 1]; q++) out.add(rows[q], v)
  }
}

function denseScatter(K: number, N: number, weight: Float64Array): Scatter {
  return (k, v, out) => {
    const r = Math.floor(k / K)
    const kk = k - r * K
    const wRow = kk * N
    const oRow = r * N
    for (let n = 0; n < N; n++) {
      const w = weight[wRow + n]
      if (w !== 0) out.add(oRow + n, w * v)
    }
  }
}

function scatterOf(p: Prim): Scatter {
  switch (p.kind) {
    case 'reshape':
      return (k, v, out) => out.add(k, v)
    case 'index':
      return indexScatter(p.map, sizeOf(p.in))
    case 'scale':
      return (k, v, out) => {
        const f = p.f[k]
        if (f === f && f !== 0) out.add(k, f * v)
      }
    case 'segsum':
      return (k, v, out) => {
        const r = p.map[k]
        if (r >= 0) out.add(r, v)
      }
    case 'sumpool':
      return sumpoolScatter(p.geom)
    case 'conv':
      return convScatter(p.geom, p.weight)
    case 'dense':
      return denseScatter(p.k, p.n, p.weight)
  }
}

/** Largest number of output rows one input element reaches (for the builder's first allocation). */
function fanOut(p: Prim): number {
  switch (p.kind) {
    case 'conv':
      return (p.geom.m / p.geom.group) * Math.ceil(p.geom.kh / p.geom.strides[0]) * Math.ceil(p.geom.kw / p.geom.strides[1])
    case 'sumpool':
      return Math.ceil(p.geom.kh / p.geom.strides[0]) * Math.ceil(p.geom.kw / p.geom.strides[1])
    case 'dense':
      return p.n
    case 'index':
      return Math.max(1, Math.ceil(p.map.length / Math.max(1, sizeOf(p.in))))
    default:
      return 1
  }
}

/** P M for one primitive P (rows of M = the primitive's input elements). */
export function primTimesCols(p: Prim, m: SparseCols): SparseCols {
  const nIn = sizeOf(p.in)
  const nOut = sizeOf(p.out)
  if (m.rows !== nIn) throw new Error(`sparse map has ${m.rows} rows, the ${p.kind} primitive reads ${nIn} elements`)
  if (p.kind === 'reshape') {
    if (nOut !== nIn) throw new Error(`reshape of ${nIn} elements to ${nOut}`)
    return m
  }
  if (p.kind === 'scale') {
    // rows keep their order: scale in place, dropping rows whose factor is 0 or NaN (don't care)
    const start = new Int32Array(m.cols + 1)
    const idx = new Int32Array(m.idx.length)
    const val = new Float64Array(m.val.length)
    let nnz = 0
    for (let j = 0; j < m.cols; j++) {
      for (let q = m.start[j]; q < m.start[j + 1]; q++) {
        const f = p.f[m.idx[q]]
        const v = f * m.val[q]
        if (f !== f || v === 0) continue
        idx[nnz] = m.idx[q]
        val[nnz++] = v
      }
      start[j + 1] = nnz
    }
    return { rows: nOut, cols: m.cols, start, idx: idx.slice(0, nnz), val: val.slice(0, nnz) }
  }
  const scatter = scatterOf(p)
  const b = new ColumnBuilder(nOut, m.cols, m.idx.length * fanOut(p))
  for (let j = 0; j < m.cols; j++) {
    for (let q = m.start[j]; q < m.start[j + 1]; q++) scatter(m.idx[q], m.val[q], b)
    b.next()
  }
  return b.finish()
}

/** P_n ... P_1 M for a term's chain of primitives p_1 ... p_n. */
export function chainTimesCols(prims: readonly Prim[], m: SparseCols): SparseCols {
  let r = m
  for (const p of prims) r = primTimesCols(p, r)
  return r
}

/** a + b (same shape), column by column. */
export function addSparse(a: SparseCols, b: SparseCols): SparseCols {
  if (a.rows !== b.rows || a.cols !== b.cols) throw new Error(`adding sparse maps of ${a.rows}x${a.cols} and ${b.rows}x${b.cols}`)
  const out = new ColumnBuilder(a.rows, a.cols, a.idx.length + b.idx.length)
  for (let j = 0; j < a.cols; j++) {
    for (let q = a.start[j]; q < a.start[j + 1]; q++) out.add(a.idx[q], a.val[q])
    for (let q = b.start[j]; q < b.start[j + 1]; q++) out.add(b.idx[q], b.val[q])
    out.next()
  }
  return out.finish()
}
