/**
 * Neural-network ops over [N, C, D1, ..., Dn] (any number n >= 1 of spatial dims; see window.ts):
 *   Conv           y[n, m, o] = B[m] + sum_{c in m's group, t} W[m, c, t] x[n, c, o s - pads + t d]
 *                  (im2col + blocked matrix product; the 1-D/2-D kernel is the fast path)
 *   ConvTranspose  y[n, m, i s + t d - pads] += W[c, m, t] x[n, c, i], plus B[m] (the adjoint of Conv)
 *   Gemm, MatMul   matrix products
 *   BatchNormalization  scale (x - mean) / sqrt(var + epsilon) + bias per channel; in training mode
 *                  with the batch's mean and (population) variance, outputs 1 and 2 the running
 *                  statistics input * momentum + batch * (1 - momentum)
 *   MaxPool, AveragePool  max / mean over each window (MaxPool's output 1: the flat index of the max)
 *   MaxUnpool      zeros with y[I[j]] = x[j] (then zero-padded at the ends to output_shape)
 *   GlobalAveragePool, GlobalMaxPool  mean / max over all spatial positions
 * The backends' secret forms (ConvGeom) are 2-D: windows of 3 or more spatial dims are declared
 * non-polynomial, which the backends refuse.
 */
import { indexPrim, layoutForm, scaleBy, type ConvGeom, type Prim, type SecretForm } from '../linear.js'
import { defineOp, OpError, outputIndex, type OpDef } from '../op.js'
import { isInteger, MAX_ELEMENTS, sizeOf, stridesOf, type Tensor, type TensorType } from '../tensor.js'
import { alloc, broadcastIndex, broadcastShapes, checkShape, intsOf, requireFloat, withData } from './util.js'
import { applyPrim } from '../linear.js'
import { as2d, parseWindow, resolveND, tapTable, unknownKernel, windowOnnx, type Window } from './window.js'

export type { Window } from './window.js'

/** C[M,N] += A[M,K] @ B[K,N], row-major, at the given offsets (two rows of C by four rows of B per sweep). */
export function matmulAcc(
  a: Float64Array, aOff: number, b: Float64Array, bOff: number, c: Float64Array, cOff: number,
  M: number, K: number, N: number,
): void {
  let i = 0
  for (; i + 1 < M; i += 2) {
    const c0 = cOff + i * N
    const c1 = c0 + N
    const a0 = aOff + i * K
    const a1 = a0 + K
    let k = 0
    for (; k + 3 < K; k += 4) {
      const x0 = a[a0 + k], x1 = a[a0 + k + 1], x2 = a[a0 + k + 2], x3 = a[a0 + k + 3]
      const y0 = a[a1 + k], y1 = a[a1 + k + 1], y2 = a[a1 + k + 2], y3 = a[a1 + k + 3]
      const b0 = bOff + k * N
      const b1 = b0 + N
      const b2 = b1 + N
      const b3 = b2 + N
      for (let j = 0; j < N; j++) {
        const v0 = b[b0 + j], v1 = b[b1 + j], v2 = b[b2 + j], v3 = b[b3 + j]
        c[c0 + j] += x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3
        c[c1 + j] += y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3
      }
    }
    for (; k < K; k++) {
      const x = a[a0 + k]
      const y = a[a1 + k]
      const bk = bOff + k * N
      for (let j = 0; j < N; j++) {
        const v = b[bk + j]
        c[c0 + j] += x * v
        c[c1 + j] += y * v
      }
    }
  }
  for (; i < M; i++) {
    const ci = cOff + i * N
    const ai = aOff + i * K
    for (let k = 0; k < K; k++) {
      const av = a[ai + k]
      const bk = bOff + k * N
      for (let j = 0; j < N; j++) c[ci + j] += av * b[bk + j]
    }
  }
}

/** Elements of one im2col buffer; a batch of images shares one buffer up to this size. */
const COL_LIMIT = 1 << 16

/** The geometry of a 2-D window on one image [c, h, w] (1-D windows as h = 1). */
function geomOf(win: ReturnType<typeof resolveWindow>, c: number, h: number, w: number, m: number, group: number): ConvGeom {
  return {
    c, h, w, m, oh: win.outH, ow: win.outW, kh: win.k[0], kw: win.k[1],
    strides: [win.s[0], win.s[1]], pads: [win.pads[0], win.pads[1], win.pads[2], win.pads[3]], dilations: [win.d[0], win.d[1]], group,
  }
}

/** The window on an inH x inW input (1-D windows as height 1): explicit pads [top, left, bottom, right] (auto_pad resolved), kernel, strides, dilations and output size. */
export function resolveWindow(w: Window, inH: number, inW: number): { pads: number[]; k: number[]; s: number[]; d: number[]; outH: number; outW: number } {
  const r = resolveND(as2d(w), [inH, inW])
  return { pads: [...r.begin, ...r.end], k: r.k, s: r.s, d: r.d, outH: r.out[0], outW: r.out[1] }
}

/** [N, C, H, W] of a 1-D or 2-D input (1-D as H = 1). */
function spatial(t: TensorType, what: string): [number, number, number, number] {
  if (t.shape.length === 4) return t.shape as [number, number, number, number]
  if (t.shape.length === 3) return [t.shape[0], t.shape[1], 1, t.shape[2]]
  throw new OpError(`${what} supports 1-D and 2-D spatial inputs (rank 3 or 4) here, got rank ${t.shape.length}`)
}

/** The input must be [N, C, D1, ...]. */
function requireSpatial(t: TensorType, what: string): void {
  if (t.shape.length < 3) throw new OpError(`${what} needs an input [N, C, spatial...] of rank >= 3, got rank ${t.shape.length}`)
}

interface ConvAttrs extends Window {
  group: number
}

/** Conv's window: kernel from the weight; strides, dilations and pads given for another rank (absent) default to the weight's. */
function convWindow(a: ConvAttrs, kshape: number[]): Window {
  const r = kshape.length
  const fit = (v: number[], n: number, fill: number) => (v.length === n ? v : new Array(n).fill(fill))
  return { ...a, kernel: kshape, strides: fit(a.strides, r, 1), dilations: fit(a.dilations, r, 1), pads: fit(a.pads, 2 * r, 0) }
}

export const Conv = defineOp<ConvAttrs>({
  doc: 'N-channel convolution over 1 or more spatial dims (groups, pads, strides, dilations, auto_pad); X[N,C,D...], W[M,C/group,k...], B[M]',
  kind: 'linear',
  arity: [2, 3],
  since: 1,
  attrs: (r) => ({ ...parseWindow(r, unknownKernel(r)), group: r.int('group', 1) }),
  onnx: (a) => ({ ...windowOnnx(a, true), group: { i: a.group } }),
  infer: (ins, a) => {
    const [x, w, b] = ins
    requireFloat(x)
    requireSpatial(x, 'Conv')
    const [n, c] = x.shape
    if (w.shape.length !== x.shape.length) throw new OpError(`weight rank ${w.shape.length} does not match input rank ${x.shape.length}`)
    const m = w.shape[0]
    if (a.group < 1 || c % a.group !== 0 || m % a.group !== 0) throw new OpError(`group ${a.group} does not divide ${c} input and ${m} output channels`)
    if (w.shape[1] * a.group !== c)
      throw new OpError(`input has ${c} channels but the weight expects ${w.shape[1] * a.group} (${w.shape[1]} per group x ${a.group} groups)`)
    if (b && (b.shape.length !== 1 || b.shape[0] !== m)) throw new OpError(`bias shape [${b.shape.join(',')}] does not match ${m} output channels`)
    const kshape = w.shape.slice(2)
    if (a.kernel[0] !== 0 && (a.kernel.length !== kshape.length || a.kernel.some((k, i) => k !== kshape[i]))) throw new OpError('kernel_shape does not match the weight')
    const win = resolveND(convWindow(a, kshape), x.shape.slice(2))
    const colElements = sizeOf(w.shape.slice(1)) * sizeOf(win.out)
    if (colElements > MAX_ELEMENTS) throw new OpError(`the convolution needs ${colElements} elements of im2col buffer per image, more than the ${MAX_ELEMENTS} PIC allows`)
    return { dtype: x.dtype, shape: checkShape([n, m, ...win.out]) }
  },
  eval: (ins, a, out) => {
    const [x, w, b] = ins
    if (x.shape.length > 4) return convND(x, w, b, a, out)
    const [n, c, h, wd] = spatial(x, 'Conv')
    const win = resolveWindow(convWindow(a, w.shape.slice(2)), h, wd)
    const [kh, kw] = win.k
    const [sh, sw] = win.s
    const [dh, dw] = win.d
    const [pt, pl] = win.pads
    const { outH, outW } = win
    const m = w.shape[0]
    const g = a.group
    const cg = c / g
    const mg = m / g
    const P = outH * outW
    const CK = cg * kh * kw
    const y = alloc(out)
    const yd = y.data
    const xd = x.data
    // im2col over a chunk of images at once: col[CK][nb * P], one product per group and chunk
    const chunk = Math.max(1, Math.min(n, Math.floor(COL_LIMIT / Math.max(1, CK * P))))
    const col = new Float64Array(CK * chunk * P)
    const tmp = new Float64Array(mg * chunk * P)
    for (let b0 = 0; b0 < n; b0 += chunk) {
      const nb = Math.min(chunk, n - b0)
      const L = nb * P
      for (let gi = 0; gi < g; gi++) {
        let row = 0
        for (let ci = 0; ci < cg; ci++)
          for (let ki = 0; ki < kh; ki++)
            for (let kj = 0; kj < kw; kj++, row++)
              for (let bi = 0; bi < nb; bi++) {
                const xc = ((b0 + bi) * c + gi * cg + ci) * h * wd
                const r = row * L + bi * P
                for (let oh = 0; oh < outH; oh++) {
                  const ih = oh * sh - pt + ki * dh
                  const ro = r + oh * outW
                  if (ih < 0 || ih >= h) {
                    col.fill(0, ro, ro + outW)
                    continue
                  }
                  const xr = xc + ih * wd
                  for (let ow = 0; ow < outW; ow++) {
                    const iw = ow * sw - pl + kj * dw
                    col[ro + ow] = iw >= 0 && iw < wd ? xd[xr + iw] : 0
                  }
                }
              }
        tmp.fill(0, 0, mg * L)
        matmulAcc(w.data, gi * mg * CK, col, 0, tmp, 0, mg, CK, L)
        for (let mi = 0; mi < mg; mi++) {
          const bias = b ? b.data[gi * mg + mi] : 0
          for (let bi = 0; bi < nb; bi++) {
            const yOff = ((b0 + bi) * m + gi * mg + mi) * P
            const tOff = mi * L + bi * P
            for (let p = 0; p < P; p++) yd[yOff + p] = tmp[tOff + p] + bias
          }
        }
      }
    }
    return y
  },
  secret: (ins, a, out) => {
    const [x, w, b] = ins
    if (w.secret || (b && b.secret)) return { form: 'product' }
    if (x.shape.length > 4) return { form: 'nonpoly', why: 'convolutions over more than two spatial dimensions are not supported on encrypted values' }
    const [, c, h, wd] = spatial(x, 'Conv')
    const win = resolveWindow(convWindow(a, w.shape.slice(2)), h, wd)
    const geom = geomOf(win, c, h, wd, w.shape[0], a.group)
    return { form: 'affine', terms: [{ input: 0, prims: [{ kind: 'conv', in: x.shape, out: out.shape, geom, weight: w.value!.data }] }] }
  },
})

/** Conv over 3 or more spatial dims: im2col through the tap table, one product per image and group. */
function convND(x: Tensor, w: Tensor, b: Tensor | undefined, a: ConvAttrs, out: TensorType): Tensor {
  const [n, c] = x.shape
  const m = w.shape[0]
  const sp = x.shape.slice(2)
  const win = resolveND(convWindow(a, w.shape.slice(2)), sp)
  const tab = tapTable(win, sp)
  const P = sizeOf(win.out)
  const K = sizeOf(win.k)
  const S = sizeOf(sp)
  const g = a.group
  const cg = c / g
  const mg = m / g
  const CK = cg * K
  const col = new Float64Array(CK * P)
  const tmp = new Float64Array(mg * P)
  const y = alloc(out)
  const xd = x.data
  for (let bn = 0; bn < n; bn++)
    for (let gi = 0; gi < g; gi++) {
      for (let ci = 0; ci < cg; ci++) {
        const xc = (bn * c + gi * cg + ci) * S
        for (let q = 0; q < K; q++) {
          const row = (ci * K + q) * P
          for (let p = 0; p < P; p++) {
            const off = tab[p * K + q]
            col[row + p] = off >= 0 ? xd[xc + off] : 0
          }
        }
      }
      tmp.fill(0)
      matmulAcc(w.data, gi * mg * CK, col, 0, tmp, 0, mg, CK, P)
      for (let mi = 0; mi < mg; mi++) {
        const bias = b ? b.data[gi * mg + mi] : 0
        const yOff = (bn * m + gi * mg + mi) * P
        for (let p = 0; p < P; p++) y.data[yOff + p] = tmp[mi * P + p] + bias
      }
    }
  return y
}

interface ConvTransposeAttrs extends Window {
  group: number
  outputPadding: number[]
  outputShape?: number[]
}

/**
 * ConvTranspose's geometry on spatial input `ins` with kernel `ks`: strides, dilations, leading pads
 * and output size. The full output is s (in - 1) + output_padding + (k - 1) d + 1; explicit pads cut
 * it, while output_shape (or auto_pad SAME_*: in * s) fixes the size and spreads the difference as
 * pads (SAME_UPPER: the smaller half first), an output larger than the full one ending in bias.
 */
function transposeGeometry(a: ConvTransposeAttrs, ins: readonly number[], ks: readonly number[]) {
  const nd = ins.length
  const fit = (v: number[], len: number, fill: number, what: string) => {
    if (v.length === len) return v
    if (v.some((x) => x !== fill)) throw new OpError(`${what} has ${v.length} values for ${nd} spatial dims`)
    return new Array(len).fill(fill)
  }
  const s = fit(a.strides, nd, 1, 'strides')
  const d = fit(a.dilations, nd, 1, 'dilations')
  const pads = fit(a.pads, 2 * nd, 0, 'pads')
  const op = fit(a.outputPadding, nd, 0, 'output_padding')
  let shape = a.outputShape
  if (shape && shape.length === nd + 2) shape = shape.slice(2)
  if (shape && shape.length !== nd) throw new OpError(`output_shape has ${shape.length} values for ${nd} spatial dims`)
  const begin: number[] = []
  const out: number[] = []
  for (let i = 0; i < nd; i++) {
    const full = s[i] * (ins[i] - 1) + op[i] + (ks[i] - 1) * d[i] + 1
    if (shape || a.autoPad === 'SAME_UPPER' || a.autoPad === 'SAME_LOWER') {
      const target = shape ? shape[i] : ins[i] * s[i]
      const total = Math.max(0, full - target)
      const half = Math.floor(total / 2)
      begin.push(a.autoPad === 'SAME_UPPER' ? half : total - half)
      out.push(target)
    } else if (a.autoPad === 'VALID') {
      begin.push(0)
      out.push(full)
    } else {
      begin.push(pads[i])
      out.push(full - pads[i] - pads[nd + i])
    }
  }
  return { k: [...ks], s, d, begin, out }
}

export const ConvTranspose = defineOp<ConvTransposeAttrs>({
  doc: 'transposed convolution over 1 or more spatial dims (groups, pads, strides, dilations, output_padding, output_shape, auto_pad); X[N,C,D...], W[C,M/group,k...], B[M]',
  kind: 'linear',
  arity: [2, 3],
  since: 1,
  attrs: (r) => {
    const k = unknownKernel(r)
    return {
      ...parseWindow(r, k),
      group: r.int('group', 1),
      outputPadding: r.ints('output_padding', new Array(k.length).fill(0)),
      outputShape: r.has('output_shape') ? r.ints('output_shape') : undefined,
    }
  },
  onnx: (a) => ({
    ...windowOnnx(a, true),
    group: { i: a.group },
    output_padding: { ints: a.outputPadding },
    output_shape: a.outputShape ? { ints: a.outputShape } : undefined,
  }),
  infer: (ins, a) => {
    const [x, w, b] = ins
    requireFloat(x)
    requireSpatial(x, 'ConvTranspose')
    if (w.shape.length !== x.shape.length) throw new OpError(`weight rank ${w.shape.length} does not match input rank ${x.shape.length}`)
    if (a.ceil) throw new OpError('ConvTranspose has no ceil_mode')
    const [n, c] = x.shape
    if (w.shape[0] !== c) throw new OpError(`input has ${c} channels but the weight expects ${w.shape[0]}`)
    if (a.group < 1 || c % a.group !== 0) throw new OpError(`group ${a.group} does not divide ${c} input channels`)
    const m = w.shape[1] * a.group
    if (b && (b.shape.length !== 1 || b.shape[0] !== m)) throw new OpError(`bias shape [${b.shape.join(',')}] does not match ${m} output channels`)
    const ks = w.shape.slice(2)
    if (a.kernel[0] !== 0 && (a.kernel.length !== ks.length || a.kernel.some((k, i) => k !== ks[i]))) throw new OpError('kernel_shape does not match the weight')
    const geo = transposeGeometry(a, x.shape.slice(2), ks)
    const cols = sizeOf(w.shape.slice(1)) * sizeOf(x.shape.slice(2))
    if (cols > MAX_ELEMENTS) throw new OpError(`the transposed convolution needs ${cols} elements of column buffer per image, more than the ${MAX_ELEMENTS} PIC allows`)
    return { dtype: x.dtype, shape: checkShape([n, m, ...geo.out]) }
  },
  eval: (ins, a, out) => {
    // per image and group: cols[mg K, P] = W_g^T x_g, then each column scattered through the tap table
    const [x, w, b] = ins
    const [n, c] = x.shape
    const m = out.shape[1]
    const sp = x.shape.slice(2)
    const geo = transposeGeometry(a, sp, w.shape.slice(2))
    const tab = tapTable({ ...geo, end: [], out: sp }, geo.out)
    const P = sizeOf(sp)
    const K = sizeOf(geo.k)
    const Q = sizeOf(geo.out)
    const g = a.group
    const cg = c / g
    const mg = m / g
    const y = alloc(out)
    if (b) for (let i = 0; i < n * m; i++) y.data.fill(b.data[i % m], i * Q, (i + 1) * Q)
    const wts = Array.from({ length: g }, (_, gi) => transpose2(w.data.subarray(gi * cg * mg * K, (gi + 1) * cg * mg * K), cg, mg * K))
    const cols = new Float64Array(mg * K * P)
    for (let bn = 0; bn < n; bn++)
      for (let gi = 0; gi < g; gi++) {
        cols.fill(0)
        matmulAcc(wts[gi], 0, x.data, (bn * c + gi * cg) * P, cols, 0, mg * K, cg, P)
        for (let mi = 0; mi < mg; mi++) {
          const yOff = (bn * m + gi * mg + mi) * Q
          for (let q = 0; q < K; q++) {
            const row = (mi * K + q) * P
            for (let p = 0; p < P; p++) {
              const o = tab[p * K + q]
              if (o >= 0) y.data[yOff + o] += cols[row + p]
            }
          }
        }
      }
    return y
  },
})

interface GemmAttrs {
  alpha: number
  beta: number
  transA: boolean
  transB: boolean
}

export const Gemm = defineOp<GemmAttrs>({
  doc: 'alpha op(A) @ op(B) + beta C, op = optional transpose, C broadcast to [M,N] (before opset 7 only with broadcast = 1, else C is [M,N] already)',
  kind: 'linear',
  arity: [2, 3],
  since: 1,
  attrs: (r) => ({ alpha: r.float('alpha', 1), beta: r.float('beta', 1), transA: r.int('transA', 0) === 1, transB: r.int('transB', 0) === 1 }),
  onnx: (a) => ({ alpha: { f: a.alpha }, beta: { f: a.beta }, transA: { i: a.transA ? 1 : 0 }, transB: { i: a.transB ? 1 : 0 } }),
  infer: (ins, a) => {
    const [A, B, C] = ins
    if (A.shape.length !== 2 || B.shape.length !== 2) throw new OpError('Gemm inputs A and B must be matrices')
    const [M, K] = a.transA ? [A.shape[1], A.shape[0]] : A.shape
    const [K2, N] = a.transB ? [B.shape[1], B.shape[0]] : B.shape
    if (K !== K2) throw new OpError(`inner dimensions differ: A gives ${K}, B gives ${K2}`)
    if (C) {
      const s = broadcastShapes([C.shape, [M, N]])
      if (s[0] !== M || s[1] !== N) throw new OpError(`C of shape [${C.shape.join(',')}] does not broadcast to [${M},${N}]`)
    }
    return { dtype: A.dtype, shape: checkShape([M, N]) }
  },
  eval: (ins, a, out) => {
    const [A, B, C] = ins
    const [M, N] = out.shape
    const K = a.transA ? A.shape[0] : A.shape[1]
    const at = a.transA ? transpose2(A.data, A.shape[0], A.shape[1]) : A.data
    const bt = a.transB ? transpose2(B.data, B.shape[0], B.shape[1]) : B.data
    const y = new Float64Array(M * N)
    matmulAcc(at, 0, bt, 0, y, 0, M, K, N)
    if (a.alpha !== 1) for (let i = 0; i < y.length; i++) y[i] *= a.alpha
    if (C && a.beta !== 0) {
      const idx = broadcastIndex(C.shape, out.shape)
      for (let i = 0; i < y.length; i++) y[i] += a.beta * C.data[idx ? idx[i] : i]
    }
    return withData(out, y)
  },
  secret: (ins, a, out) => {
    const a_ = a
    const [A, B, C] = ins
    if (C && C.secret) return { form: 'product' }
    if (A.secret && B.secret) return { form: 'product' }
    if (!A.secret) {
      // a constant times a secret: y = op(A) op(B) = (op(B)^T op(A)^T)^T
      const a = a_.transA ? transpose2(A.value!.data, A.shape[0], A.shape[1]) : Float64Array.from(A.value!.data)
      const [M, K] = a_.transA ? [A.shape[1], A.shape[0]] : A.shape
      if (a_.alpha !== 1) for (let i = 0; i < a.length; i++) a[i] *= a_.alpha
      return { form: 'affine', terms: [{ input: 1, prims: leftDense(a, M, K, B.shape, a_.transB) }] }
    }
    const [M, N] = out.shape
    const K = a.transA ? A.shape[0] : A.shape[1]
    const prims: Prim[] = []
    if (a.transA) {
      const map = new Int32Array(M * K)
      for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) map[i * K + k] = k * M + i
      prims.push(indexPrim(A.shape, [M, K], map))
    }
    const bv = B.value!.data
    const w = a.transB ? transpose2(bv, B.shape[0], B.shape[1]) : Float64Array.from(bv)
    if (a.alpha !== 1) for (let i = 0; i < w.length; i++) w[i] *= a.alpha
    prims.push({ kind: 'dense', in: [M, K], out: [M, N], k: K, n: N, weight: w })
    return { form: 'affine', terms: [{ input: 0, prims }] }
  },
})

/** A constant [M, K] matrix times a secret B ([K, N], or [N, K] when transposed) as primitives on B. */
function leftDense(a: Float64Array, M: number, K: number, bShape: readonly number[], bTransposed: boolean): Prim[] {
  const N = bTransposed ? bShape[0] : bShape[1]
  const perm = (rows: number, cols: number) => Int32Array.from({ length: rows * cols }, (_, i) => (i % rows) * cols + Math.floor(i / rows))
  return [
    ...(bTransposed ? [] : [indexPrim(bShape, [N, K], perm(K, N))]),
    { kind: 'dense', in: [N, K], out: [N, M], k: K, n: M, weight: transpose2(a, M, K) },
    indexPrim([N, M], [M, N], perm(N, M)),
  ]
}

export function transpose2(d: Float64Array, r: number, c: number): Float64Array {
  const t = new Float64Array(r * c)
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = d[i * c + j]
  return t
}

export const MatMul = defineOp<object>({
  doc: 'matrix product with NumPy semantics (1-D promotion, batch broadcasting)',
  kind: 'linear',
  arity: [2, 2],
  since: 1,
  attrs: () => ({}),
  infer: (ins) => {
    const [A, B] = ins
    if (A.shape.length === 0 || B.shape.length === 0) throw new OpError('MatMul inputs must have rank >= 1')
    const a = A.shape.length === 1 ? [1, A.shape[0]] : A.shape
    const b = B.shape.length === 1 ? [B.shape[0], 1] : B.shape
    const K = a[a.length - 1]
    if (K !== b[b.length - 2]) throw new OpError(`inner dimensions differ: ${K} and ${b[b.length - 2]}`)
    const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)])
    const shape = [...batch]
    if (A.shape.length > 1) shape.push(a[a.length - 2])
    if (B.shape.length > 1) shape.push(b[b.length - 1])
    return { dtype: A.dtype, shape: checkShape(shape) }
  },
  eval: (ins, _a, out) => {
    const [A, B] = ins
    const a = A.shape.length === 1 ? [1, A.shape[0]] : A.shape
    const b = B.shape.length === 1 ? [B.shape[0], 1] : B.shape
    const M = a[a.length - 2]
    const K = a[a.length - 1]
    const N = b[b.length - 1]
    const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)])
    const nb = sizeOf(batch)
    const ia = broadcastIndex(a.slice(0, -2), batch)
    const ib = broadcastIndex(b.slice(0, -2), batch)
    const y = new Float64Array(nb * M * N)
    for (let i = 0; i < nb; i++)
      matmulAcc(A.data, (ia ? ia[i] : i) * M * K, B.data, (ib ? ib[i] : i) * K * N, y, i * M * N, M, K, N)
    return withData(out, y)
  },
  secret: (ins, _a, out) => {
    const [A, B] = ins
    if (A.secret && B.secret) return { form: 'product' }
    if (B.secret) {
      if (A.shape.length !== 2 || B.shape.length !== 2) return { form: 'product' }
      return { form: 'affine', terms: [{ input: 1, prims: leftDense(A.value!.data, A.shape[0], A.shape[1], B.shape, false) }] }
    }
    if (B.shape.length > 2) return { form: 'product' }
    const K = B.shape[0]
    const N = B.shape.length === 1 ? 1 : B.shape[1]
    return { form: 'affine', terms: [{ input: 0, prims: [{ kind: 'dense', in: A.shape, out: out.shape, k: K, n: N, weight: B.value!.data }] }] }
  },
})

interface BatchNormAttrs {
  epsilon: number
  /** Training mode (opset 14+): normalize by the batch's statistics; outputs 1, 2 are the running mean and variance. */
  training?: true
  momentum?: number
  output?: number
  outputs?: number
}

export const BatchNormalization = defineOp<BatchNormAttrs>({
  doc: 'batch normalization over axis 1: scale (x - mean) / sqrt(var + epsilon) + bias; in training mode with the batch mean and variance, outputs 1 and 2 mean * momentum + batch mean * (1 - momentum) and the same for var',
  kind: 'linear',
  arity: [5, 5],
  since: 1,
  attrs: (r) => {
    const mode = r.int('training_mode', 0)
    if (mode !== 0 && mode !== 1) throw new OpError(`training_mode must be 0 or 1, got ${mode}`)
    if (mode === 1 && r.opset < 14) throw new OpError('training_mode exists from opset 14 on')
    // before opset 9: spatial = 0 normalizes per activation (mean and var shaped like one sample), which PIC does not
    if (r.opset < 9 && r.int('spatial', 1) !== 1) throw new OpError('BatchNormalization with spatial = 0 is not supported')
    if (r.opset < 7 && r.int('is_test', 0) !== 1) throw new OpError('BatchNormalization before opset 7 must have is_test = 1 (PIC runs inference)')
    const epsilon = r.float('epsilon', 1e-5)
    return mode === 1 ? { epsilon, training: true, momentum: r.float('momentum', 0.9) } : { epsilon }
  },
  onnx: (a, opset) => {
    if (a.training && opset < 14) throw new OpError('training-mode BatchNormalization needs opset 14')
    return {
      epsilon: a.epsilon !== 1e-5 ? { f: a.epsilon } : undefined,
      training_mode: a.training ? { i: 1 } : undefined,
      momentum: a.training && a.momentum !== undefined && a.momentum !== 0.9 ? { f: a.momentum } : undefined,
    }
  },
  outputs: (a) => a.outputs ?? 1,
  infer: (ins, a) => {
    const x = ins[0]
    requireFloat(x)
    if (x.shape.length < 2) throw new OpError('input must have a channel axis (rank >= 2)')
    const c = x.shape[1]
    for (let i = 1; i < 5; i++)
      if (ins[i].shape.length !== 1 || ins[i].shape[0] !== c)
        throw new OpError(`parameter ${i} has shape [${ins[i].shape.join(',')}], expected [${c}]`)
    const k = outputIndex(a)
    if (k === 0) return { dtype: x.dtype, shape: x.shape }
    if (!a.training || k > 2) throw new OpError(`output ${k} is not supported: PIC computes outputs 1 and 2 (running mean and variance) in training mode (opset 14+) only`)
    return { dtype: ins[k + 2].dtype, shape: [c] }
  },
  eval: (ins, a, out) => {
    const [x, s, bias, mean, v] = ins
    const c = x.shape[1]
    const inner = sizeOf(x.shape.slice(2))
    const y = new Float64Array(a.training && outputIndex(a) > 0 ? c : x.data.length)
    for (let ch = 0; ch < c; ch++) {
      let mu = mean.data[ch]
      let sigma2 = v.data[ch]
      if (a.training) {
        const count = x.shape[0] * inner
        let sum = 0
        for (let n = 0; n < x.shape[0]; n++) for (let i = 0, base = (n * c + ch) * inner; i < inner; i++) sum += x.data[base + i]
        mu = sum / count
        let sq = 0
        for (let n = 0; n < x.shape[0]; n++) for (let i = 0, base = (n * c + ch) * inner; i < inner; i++) sq += (x.data[base + i] - mu) ** 2
        sigma2 = sq / count
        const m = a.momentum ?? 0.9
        const k = outputIndex(a)
        if (k === 1) y[ch] = mean.data[ch] * m + mu * (1 - m)
        if (k === 2) y[ch] = v.data[ch] * m + sigma2 * (1 - m)
        if (k > 0) continue
      }
      const k = s.data[ch] / Math.sqrt(sigma2 + a.epsilon)
      const off = bias.data[ch] - k * mu
      for (let n = 0; n < x.shape[0]; n++) {
        const base = (n * c + ch) * inner
        for (let i = 0; i < inner; i++) y[base + i] = k * x.data[base + i] + off
      }
    }
    return withData(out, y)
  },
  secret: (ins, a, out) => {
    if (a.training) return { form: 'nonpoly' } // statistics of the secret batch
    if (ins.slice(1).some((i) => i.secret)) return { form: 'product' }
    const [, s, , , v] = ins.map((i) => i.value)
    const k = s!.data.map((sc, ch) => sc / Math.sqrt(v!.data[ch] + a.epsilon))
    return { form: 'affine', terms: [{ input: 0, prims: [scaleBy(out.shape, { dtype: 'float64', shape: [k.length, ...out.shape.slice(2).map(() => 1)], data: k })] }] }
  },
})

interface PoolAttrs extends Window {
  countIncludePad: boolean
  /** MaxPool: how output 1 flattens the index of each maximum, 0 row-major (C order), 1 column-major. */
  storageOrder?: number
  output?: number
  outputs?: number
}

/** Column-major offsets of the C-order offsets of a tensor of `shape`. */
function columnMajor(shape: readonly number[]): Int32Array {
  const n = sizeOf(shape)
  const cm = new Int32Array(n)
  const rank = shape.length
  const c = new Array<number>(rank).fill(0)
  for (let e = 0; e < n; e++) {
    let off = 0
    for (let d = rank - 1; d >= 0; d--) off = off * shape[d] + c[d]
    cm[e] = off
    for (let d = rank - 1; d >= 0; d--) {
      if (++c[d] < shape[d]) break
      c[d] = 0
    }
  }
  return cm
}

function pool(kind: 'max' | 'avg') {
  const name = kind === 'max' ? 'MaxPool' : 'AveragePool'
  return defineOp<PoolAttrs>({
    doc: kind === 'max'
      ? 'max pooling over 1 or more spatial dims (pads, strides, dilations, ceil_mode, auto_pad; integer inputs too); output 1 the flat index of each maximum in the input (storage_order 0 row-major, 1 column-major per image and channel)'
      : 'average pooling over 1 or more spatial dims (pads, strides, count_include_pad, ceil_mode, auto_pad)',
    kind: kind === 'max' ? 'nonlinear' : 'linear',
    arity: [1, 1],
    since: 1,
    attrs: (r) => {
      const order = kind === 'max' ? r.int('storage_order', 0) : 0
      if (order !== 0 && order !== 1) throw new OpError(`storage_order must be 0 or 1, got ${order}`)
      if (r.ints('kernel_shape').some((k) => k < 1)) throw new OpError('kernel_shape must be positive')
      const w = { ...parseWindow(r, undefined), countIncludePad: r.int('count_include_pad', 0) === 1 }
      return kind === 'max' ? { ...w, storageOrder: order } : w
    },
    onnx: (a) => ({
      ...windowOnnx(a, false),
      count_include_pad: a.countIncludePad ? { i: 1 } : undefined,
      storage_order: a.storageOrder ? { i: a.storageOrder } : undefined,
    }),
    ...(kind === 'max' ? { outputs: (a: PoolAttrs) => a.outputs ?? 1 } : {}),
    infer: (ins, a) => {
      const x = ins[0]
      if (kind === 'avg') requireFloat(x)
      else if (x.dtype === 'bool') throw new OpError('MaxPool input must be numeric, got bool')
      requireSpatial(x, name)
      const win = resolveND(a, x.shape.slice(2))
      const shape = checkShape([x.shape[0], x.shape[1], ...win.out])
      const k = outputIndex(a)
      if (k > 1 || (k === 1 && kind !== 'max')) throw new OpError(`${name} has no output ${k}`)
      return { dtype: k === 1 ? 'int64' : x.dtype, shape }
    },
    eval: (ins, a, out) => {
      const x = ins[0]
      const sp = x.shape.slice(2)
      const win = resolveND(a, sp)
      const tab = tapTable(win, sp)
      const P = sizeOf(win.out)
      const K = sizeOf(win.k)
      const S = sizeOf(sp)
      const planes = x.shape[0] * x.shape[1]
      const y = alloc(out)
      const xd = x.data
      if (kind === 'max') {
        const indices = outputIndex(a) === 1
        const cm = indices && a.storageOrder === 1 ? columnMajor(sp) : undefined
        for (let pl = 0, o = 0; pl < planes; pl++) {
          const base = pl * S
          for (let p = 0; p < P; p++, o++) {
            let acc = -Infinity
            let at = -1
            for (let q = p * K; q < (p + 1) * K; q++) {
              const off = tab[q]
              if (off >= 0 && xd[base + off] > acc) {
                acc = xd[base + off]
                at = off
              }
            }
            y.data[o] = !indices ? acc : at < 0 ? -1 : base + (cm ? cm[at] : at)
          }
        }
        return y
      }
      // divisor per output position: its taps inside the input, or inside the padded input with count_include_pad
      const div = new Float64Array(P)
      for (let p = 0; p < P; p++) {
        let cnt = 0
        for (let q = p * K; q < (p + 1) * K; q++) if (tab[q] >= 0) cnt++
        div[p] = cnt
      }
      if (a.countIncludePad) {
        const o = new Array<number>(sp.length).fill(0)
        for (let p = 0; p < P; p++) {
          let cnt = 1
          for (let i = 0; i < sp.length; i++) {
            // windows never start before the padding; count the taps before the end padding's end
            const start = o[i] * win.s[i] - win.begin[i]
            cnt *= Math.min(win.k[i], Math.ceil((sp[i] + win.end[i] - start) / win.d[i]))
          }
          div[p] = cnt
          for (let i = sp.length - 1; i >= 0; i--) {
            if (++o[i] < win.out[i]) break
            o[i] = 0
          }
        }
      }
      for (let pl = 0, o = 0; pl < planes; pl++) {
        const base = pl * S
        for (let p = 0; p < P; p++, o++) {
          let acc = 0
          for (let q = p * K; q < (p + 1) * K; q++) {
            const off = tab[q]
            if (off >= 0) acc += xd[base + off]
          }
          y.data[o] = div[p] > 0 ? acc / div[p] : 0
        }
      }
      return y
    },
    secret: (ins, a, out): SecretForm => {
      const x = ins[0]
      if (x.shape.length > 4) return { form: 'nonpoly', why: 'pooling over more than two spatial dimensions is not supported on encrypted values' }
      if (outputIndex(a) !== 0) return { form: 'nonpoly', why: "MaxPool's indices output is not supported on encrypted values" }
      const [, c, h, w] = spatial(x, name)
      const geom = geomOf(resolveWindow(a, h, w), c, h, w, c, c)
      if (kind === 'max') return { form: 'compare', what: 'max', window: geom }
      const prim: Prim = { kind: 'sumpool', in: x.shape, out: out.shape, geom }
      // the divisor per output: the op's own average of ones over the window sums of ones
      const ones = { dtype: 'float64' as const, shape: [1, 1, h, w], data: new Float64Array(h * w).fill(1) }
      const one = { ...prim, in: ones.shape, out: [1, 1, ...out.shape.slice(2)], geom: { ...prim.geom, c: 1, m: 1, group: 1 } }
      const avg: Float64Array = avgOf([ones], { ...a, ...as2d(a) }, { dtype: 'float64', shape: one.out }).data
      const cnt = applyPrim(one, ones.data, 1)
      const f = Float64Array.from(avg, (v, i) => (cnt[i] > 0 ? v / cnt[i] : 0))
      return { form: 'affine', terms: [{ input: 0, prims: [prim, scaleBy(out.shape, { dtype: 'float64', shape: one.out, data: f })] }] }
    },
  })
}

function avgOf(ins: Tensor[], a: PoolAttrs, out: TensorType): Tensor {
  return AveragePool.eval(ins, a, out)
}

export const MaxPool = pool('max')
export const AveragePool: OpDef<PoolAttrs> = pool('avg')

interface UnpoolAttrs {
  kernel: number[]
  strides: number[]
  pads: number[]
}

/** MaxUnpool's output shape from its attributes: [N, C, (D - 1) s + k - pads...]. */
function unpooledShape(x: TensorType, a: UnpoolAttrs): number[] {
  const nd = x.shape.length - 2
  return [x.shape[0], x.shape[1], ...x.shape.slice(2).map((d, i) => (d - 1) * a.strides[i] + a.kernel[i] - a.pads[i] - a.pads[nd + i])]
}

export const MaxUnpool: OpDef<UnpoolAttrs> = defineOp<UnpoolAttrs>({
  doc: "MaxPool's partial inverse: zeros of shape [N, C, (D - 1) s + k - pads...] with y[I[j]] = x[j] (I flat indices into that shape); an output_shape (input 2) no smaller pads it with zeros at the end of each spatial dim, as onnxruntime does",
  kind: 'layout',
  arity: [2, 3],
  since: 9,
  attrs: (r) => {
    const kernel = r.ints('kernel_shape')
    const n = kernel.length
    const a = { kernel, strides: r.ints('strides', new Array(n).fill(1)), pads: r.ints('pads', new Array(2 * n).fill(0)) }
    if (a.strides.length !== n || a.pads.length !== 2 * n) throw new OpError('kernel_shape, strides and pads disagree in rank')
    if ([...kernel, ...a.strides].some((v) => v < 1) || a.pads.some((v) => v < 0)) throw new OpError('kernel_shape and strides must be positive and pads non-negative')
    return a
  },
  onnx: (a) => ({ kernel_shape: { ints: a.kernel }, strides: { ints: a.strides }, pads: { ints: a.pads } }),
  infer: (ins, a, cx) => {
    const [x, idx, shape] = ins
    requireSpatial(x, 'MaxUnpool')
    if (a.kernel.length !== x.shape.length - 2) throw new OpError(`kernel_shape has ${a.kernel.length} dims but the input has ${x.shape.length - 2} spatial dims`)
    if (!isInteger(idx.dtype)) throw new OpError(`indices must be integers, got ${idx.dtype}`)
    if (idx.shape.join(',') !== x.shape.join(',')) throw new OpError(`indices of shape [${idx.shape.join(',')}] do not match the input [${x.shape.join(',')}]`)
    const inferred = checkShape(unpooledShape(x, a))
    if (!shape) return { dtype: x.dtype, shape: inferred }
    const s = intsOf(cx.constant(2), 'output_shape')
    if (s.length !== inferred.length || s[0] !== inferred[0] || s[1] !== inferred[1] || s.some((d, i) => d < inferred[i]))
      throw new OpError(`output_shape [${s.join(',')}] must keep the batch and channels of [${inferred.join(',')}] and be no smaller`)
    return { dtype: x.dtype, shape: checkShape(s) }
  },
  eval: (ins, a, out) => {
    const [x, idx] = ins
    const inferred = unpooledShape(x, a)
    const n = sizeOf(inferred)
    const ist = stridesOf(inferred)
    const ost = stridesOf(out.shape)
    const y = alloc(out)
    for (let j = 0; j < x.data.length; j++) {
      const k = idx.data[j]
      if (!(k >= 0 && k < n)) throw new OpError(`index ${k} is out of range for an unpooled tensor of ${n} elements`)
      let off = 0
      for (let d = 0, r = k; d < inferred.length; d++) {
        off += Math.floor(r / ist[d]) * ost[d]
        r %= ist[d]
      }
      y.data[off] = x.data[j]
    }
    return y
  },
  secret: (ins, a, out) => (ins[1].secret || ins[2]?.secret ? { form: 'nonpoly' } : layoutForm(MaxUnpool, ins, a, out)),
})

function globalPool(kind: 'max' | 'avg') {
  return defineOp<object>({
    doc: kind === 'max' ? 'maximum over all spatial positions' : 'mean over all spatial positions',
    kind: kind === 'max' ? 'nonlinear' : 'linear',
    arity: [1, 1],
    since: 1,
    attrs: () => ({}),
    infer: (ins) => {
      requireFloat(ins[0])
      if (ins[0].shape.length < 3) throw new OpError('input must be [N, C, spatial...]')
      return { dtype: ins[0].dtype, shape: [...ins[0].shape.slice(0, 2), ...ins[0].shape.slice(2).map(() => 1)] }
    },
    eval: (ins, _a, out) => {
      const x = ins[0]
      const inner = sizeOf(x.shape.slice(2))
      const y = alloc(out)
      for (let p = 0; p < y.data.length; p++) {
        let acc = kind === 'max' ? -Infinity : 0
        for (let i = 0; i < inner; i++) {
          const v = x.data[p * inner + i]
          acc = kind === 'max' ? Math.max(acc, v) : acc + v
        }
        y.data[p] = kind === 'max' ? acc : acc / inner
      }
      return y
    },
    secret: (ins, _a, out): SecretForm => {
      if (kind === 'max') {
        if (ins[0].shape.length > 4) return { form: 'nonpoly', why: 'pooling over more than two spatial dimensions is not supported on encrypted values' }
        const [, c, h, w] = spatial(ins[0], 'GlobalMaxPool')
        return { form: 'compare', what: 'max', window: { c, h, w, m: c, oh: 1, ow: 1, kh: h, kw: w, strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: c } }
      }
      const inner = sizeOf(ins[0].shape.slice(2))
      const map = Int32Array.from({ length: sizeOf(ins[0].shape) }, (_, i) => Math.floor(i / inner))
      return { form: 'affine', terms: [{ input: 0, prims: [{ kind: 'segsum', in: ins[0].shape, out: out.shape, map }, scaleBy(out.shape, 1 / inner)] }] }
    },
  })
}

export const GlobalAveragePool = globalPool('avg')
export const GlobalMaxPool = globalPool('max')

export const NN_OPS: Record<string, OpDef> = {
  Conv, ConvTranspose, Gemm, MatMul, BatchNormalization, MaxPool, AveragePool, MaxUnpool, GlobalAveragePool, GlobalMaxPool,
}
