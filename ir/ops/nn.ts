/**
 * Neural-network ops: convolution (im2col + blocked matrix product), transposed convolution, Gemm,
 * MatMul, BatchNormalization and pooling. 2-D spatial ops only (NCHW).
 */
import { indexPrim, scaleBy, type ConvGeom, type Prim, type SecretForm } from '../linear.js'
import { defineOp, OpError, type OnnxAttrs, type OpDef, type RawAttrs } from '../op.js'
import { MAX_ELEMENTS, sizeOf, type Tensor, type TensorType } from '../tensor.js'
import { alloc, broadcastIndex, broadcastShapes, checkShape, requireFloat, withData } from './util.js'
import { applyPrim } from '../linear.js'

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

/** A Conv or pooling window as the attributes give it. */
export interface Window {
  kernel: number[]
  strides: number[]
  pads: number[] // [top, left, bottom, right]
  dilations: number[]
  autoPad: string
  ceil: boolean
}

function parseWindow(r: RawAttrs, kernel: number[] | undefined): Window {
  const k = kernel ?? r.ints('kernel_shape')
  const rank = k.length
  const w: Window = {
    kernel: k,
    strides: r.ints('strides', new Array(rank).fill(1)),
    pads: r.ints('pads', new Array(2 * rank).fill(0)),
    dilations: r.ints('dilations', new Array(rank).fill(1)),
    autoPad: r.string('auto_pad', 'NOTSET'),
    ceil: r.int('ceil_mode', 0) === 1,
  }
  if (!['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'].includes(w.autoPad)) throw new OpError(`unknown auto_pad '${w.autoPad}'`)
  if (w.strides.length !== rank || w.dilations.length !== rank || w.pads.length !== 2 * rank)
    throw new OpError('kernel_shape, strides, dilations and pads disagree in rank')
  if ([...w.strides, ...w.dilations].some((v) => v < 1) || w.kernel.some((v) => v < 0) || w.pads.some((v) => v < 0))
    throw new OpError('kernel, strides and dilations must be positive and pads non-negative')
  return w
}

/** A window's ONNX attributes; `all` writes strides, pads and dilations even at their defaults. */
function windowOnnx(w: Window, all: boolean): OnnxAttrs {
  const some = (v: number[], dflt: number) => (all || v.some((x) => x !== dflt) ? { ints: v } : undefined)
  return {
    kernel_shape: w.kernel.some((k) => k !== 0) ? { ints: w.kernel } : undefined,
    strides: some(w.strides, 1),
    pads: some(w.pads, 0),
    dilations: some(w.dilations, 1),
    auto_pad: w.autoPad !== 'NOTSET' ? { s: w.autoPad } : undefined,
    ceil_mode: w.ceil ? { i: 1 } : undefined,
  }
}

/** kernel_shape when given, else zeros (taken from the weight) of the rank the other attributes imply. */
function unknownKernel(r: RawAttrs): number[] {
  if (r.has('kernel_shape')) return r.ints('kernel_shape')
  const rank = r.has('strides') ? r.ints('strides').length : r.has('dilations') ? r.ints('dilations').length : r.has('pads') ? r.ints('pads').length / 2 : 2
  return new Array(rank).fill(0)
}

/** Resolve auto_pad and 1-D windows into explicit 2-D pads and output size. */
/** The window on an inH x inW input: explicit pads (auto_pad resolved), kernel, strides, dilations and output size. */
export function resolveWindow(w: Window, inH: number, inW: number): { pads: number[]; k: number[]; s: number[]; d: number[]; outH: number; outW: number } {
  const two = (v: number[], fill: number) => (v.length === 1 ? [fill, v[0]] : v)
  const k = two(w.kernel, 1)
  const s = two(w.strides, 1)
  const d = two(w.dilations, 1)
  let pads = w.pads.length === 2 ? [0, w.pads[0], 0, w.pads[1]] : [...w.pads]
  const ins = [inH, inW]
  const out = [0, 0]
  for (let i = 0; i < 2; i++) {
    const ek = (k[i] - 1) * d[i] + 1
    if (w.autoPad === 'VALID') {
      pads[i] = pads[i + 2] = 0
    } else if (w.autoPad !== 'NOTSET') {
      const o = Math.ceil(ins[i] / s[i])
      const total = Math.max(0, (o - 1) * s[i] + ek - ins[i])
      const small = Math.floor(total / 2)
      pads[i] = w.autoPad === 'SAME_UPPER' ? small : total - small
      pads[i + 2] = total - pads[i]
    }
    const span = ins[i] + pads[i] + pads[i + 2] - ek
    if (span < 0) throw new OpError(`window ${ek} is larger than the padded input ${ins[i] + pads[i] + pads[i + 2]}`)
    let o = (w.ceil ? Math.ceil(span / s[i]) : Math.floor(span / s[i])) + 1
    if (w.ceil && (o - 1) * s[i] >= ins[i] + pads[i]) o--
    out[i] = o
  }
  if (pads.length !== 4) pads = pads.slice(0, 4)
  return { pads, k, s, d, outH: out[0], outW: out[1] }
}

function spatial(t: TensorType, what: string): [number, number, number, number] {
  if (t.shape.length === 4) return t.shape as [number, number, number, number]
  if (t.shape.length === 3) return [t.shape[0], t.shape[1], 1, t.shape[2]]
  throw new OpError(`${what} supports 1-D and 2-D spatial inputs (rank 3 or 4), got rank ${t.shape.length}`)
}

function spatialOut(t: TensorType, n: number, c: number, oh: number, ow: number): number[] {
  return t.shape.length === 3 ? [n, c, ow] : [n, c, oh, ow]
}

interface ConvAttrs extends Window {
  group: number
}

/** Conv's window: kernel from the weight; strides, dilations and pads default to the weight's rank. */
function convWindow(a: ConvAttrs, kshape: number[], h: number, w: number) {
  const r = kshape.length
  const fit = (v: number[], n: number, fill: number) => (v.length === n ? v : new Array(n).fill(fill))
  return resolveWindow({ ...a, kernel: kshape, strides: fit(a.strides, r, 1), dilations: fit(a.dilations, r, 1), pads: fit(a.pads, 2 * r, 0) }, h, w)
}

export const Conv = defineOp<ConvAttrs>({
  doc: 'N-channel 2-D convolution (groups, pads, strides, dilations, auto_pad); X[N,C,H,W], W[M,C/group,kH,kW], B[M]',
  kind: 'linear',
  arity: [2, 3],
  since: 1,
  attrs: (r) => ({ ...parseWindow(r, unknownKernel(r)), group: r.int('group', 1) }),
  onnx: (a) => ({ ...windowOnnx(a, true), group: { i: a.group } }),
  infer: (ins, a) => {
    const [x, w, b] = ins
    requireFloat(x)
    const [n, c, h, wd] = spatial(x, 'Conv')
    if (w.shape.length !== x.shape.length) throw new OpError(`weight rank ${w.shape.length} does not match input rank ${x.shape.length}`)
    const m = w.shape[0]
    if (a.group < 1 || c % a.group !== 0 || m % a.group !== 0) throw new OpError(`group ${a.group} does not divide ${c} input and ${m} output channels`)
    if (w.shape[1] * a.group !== c)
      throw new OpError(`input has ${c} channels but the weight expects ${w.shape[1] * a.group} (${w.shape[1]} per group x ${a.group} groups)`)
    if (b && (b.shape.length !== 1 || b.shape[0] !== m)) throw new OpError(`bias shape [${b.shape.join(',')}] does not match ${m} output channels`)
    const kshape = w.shape.slice(2)
    if (a.kernel[0] !== 0 && a.kernel.some((k, i) => k !== kshape[i])) throw new OpError('kernel_shape does not match the weight')
    const win = convWindow(a, w.shape.slice(2), h, wd)
    const colElements = sizeOf(w.shape.slice(1)) * win.outH * win.outW
    if (colElements > MAX_ELEMENTS) throw new OpError(`the convolution needs ${colElements} elements of im2col buffer per image, more than the ${MAX_ELEMENTS} PIC allows`)
    return { dtype: x.dtype, shape: checkShape(spatialOut(x, n, m, win.outH, win.outW)) }
  },
  eval: (ins, a, out) => {
    const [x, w, b] = ins
    const [n, c, h, wd] = spatial(x, 'Conv')
    const win = convWindow(a, w.shape.slice(2), h, wd)
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
    const [, c, h, wd] = spatial(x, 'Conv')
    const win = convWindow(a, w.shape.slice(2), h, wd)
    const geom = geomOf(win, c, h, wd, w.shape[0], a.group)
    return { form: 'affine', terms: [{ input: 0, prims: [{ kind: 'conv', in: x.shape, out: out.shape, geom, weight: w.value!.data }] }] }
  },
})

interface ConvTransposeAttrs extends Window {
  group: number
  outputPadding: number[]
  outputShape?: number[]
}

export const ConvTranspose = defineOp<ConvTransposeAttrs>({
  doc: '2-D transposed convolution; X[N,C,H,W], W[C,M/group,kH,kW], B[M]',
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
    const [x, w] = ins
    requireFloat(x)
    if (x.shape.length !== 4 || w.shape.length !== 4) throw new OpError('ConvTranspose supports 2-D inputs only')
    if (a.outputShape || a.autoPad !== 'NOTSET') throw new OpError('ConvTranspose with output_shape or auto_pad is not supported')
    const [n, c, h, wd] = x.shape
    if (w.shape[0] !== c) throw new OpError(`input has ${c} channels but the weight expects ${w.shape[0]}`)
    const m = w.shape[1] * a.group
    const oh = a.strides[0] * (h - 1) + a.outputPadding[0] + (w.shape[2] - 1) * a.dilations[0] + 1 - a.pads[0] - a.pads[2]
    const ow = a.strides[1] * (wd - 1) + a.outputPadding[1] + (w.shape[3] - 1) * a.dilations[1] + 1 - a.pads[1] - a.pads[3]
    return { dtype: x.dtype, shape: checkShape([n, m, oh, ow]) }
  },
  eval: (ins, a, out) => {
    const [x, w, b] = ins
    const [n, c, h, wd] = x.shape
    const [, m, oh, ow] = out.shape
    const [kh, kw] = [w.shape[2], w.shape[3]]
    const g = a.group
    const cg = c / g
    const mg = m / g
    const y = alloc(out)
    for (let bn = 0; bn < n; bn++)
      for (let mo = 0; mo < m; mo++) {
        const base = (bn * m + mo) * oh * ow
        if (b) y.data.fill(b.data[mo], base, base + oh * ow)
      }
    for (let bn = 0; bn < n; bn++)
      for (let ci = 0; ci < c; ci++) {
        const gi = Math.floor(ci / cg)
        for (let ih = 0; ih < h; ih++)
          for (let iw = 0; iw < wd; iw++) {
            const xv = x.data[((bn * c + ci) * h + ih) * wd + iw]
            if (xv === 0) continue
            for (let mi = 0; mi < mg; mi++) {
              const mo = gi * mg + mi
              for (let ki = 0; ki < kh; ki++) {
                const yh = ih * a.strides[0] + ki * a.dilations[0] - a.pads[0]
                if (yh < 0 || yh >= oh) continue
                for (let kj = 0; kj < kw; kj++) {
                  const yw = iw * a.strides[1] + kj * a.dilations[1] - a.pads[1]
                  if (yw < 0 || yw >= ow) continue
                  y.data[((bn * m + mo) * oh + yh) * ow + yw] += xv * w.data[((ci * mg + mi) * kh + ki) * kw + kj]
                }
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

export const BatchNormalization = defineOp<{ epsilon: number }>({
  doc: 'inference-mode batch normalization over axis 1: scale (x - mean) / sqrt(var + epsilon) + bias',
  kind: 'linear',
  arity: [5, 5],
  since: 1,
  attrs: (r) => {
    if (r.int('training_mode', 0) !== 0) throw new OpError('training_mode BatchNormalization is not supported')
    // before opset 9: spatial = 0 normalizes per activation (mean and var shaped like one sample), which PIC does not
    if (r.opset < 9 && r.int('spatial', 1) !== 1) throw new OpError('BatchNormalization with spatial = 0 is not supported')
    if (r.opset < 7 && r.int('is_test', 0) !== 1) throw new OpError('BatchNormalization before opset 7 must have is_test = 1 (PIC runs inference)')
    return { epsilon: r.float('epsilon', 1e-5) }
  },
  onnx: (a) => ({ epsilon: a.epsilon !== 1e-5 ? { f: a.epsilon } : undefined }),
  infer: (ins) => {
    const x = ins[0]
    requireFloat(x)
    if (x.shape.length < 2) throw new OpError('input must have a channel axis (rank >= 2)')
    const c = x.shape[1]
    for (let i = 1; i < 5; i++)
      if (ins[i].shape.length !== 1 || ins[i].shape[0] !== c)
        throw new OpError(`parameter ${i} has shape [${ins[i].shape.join(',')}], expected [${c}]`)
    return { dtype: x.dtype, shape: x.shape }
  },
  eval: (ins, a, out) => {
    const [x, s, bias, mean, v] = ins
    const c = x.shape[1]
    const inner = sizeOf(x.shape.slice(2))
    const y = new Float64Array(x.data.length)
    for (let ch = 0; ch < c; ch++) {
      const k = s.data[ch] / Math.sqrt(v.data[ch] + a.epsilon)
      const off = bias.data[ch] - k * mean.data[ch]
      for (let n = 0; n < x.shape[0]; n++) {
        const base = (n * c + ch) * inner
        for (let i = 0; i < inner; i++) y[base + i] = k * x.data[base + i] + off
      }
    }
    return withData(out, y)
  },
  secret: (ins, a, out) => {
    if (ins.slice(1).some((i) => i.secret)) return { form: 'product' }
    const [, s, , , v] = ins.map((i) => i.value)
    const k = s!.data.map((sc, ch) => sc / Math.sqrt(v!.data[ch] + a.epsilon))
    return { form: 'affine', terms: [{ input: 0, prims: [scaleBy(out.shape, { dtype: 'float64', shape: [k.length, ...out.shape.slice(2).map(() => 1)], data: k })] }] }
  },
})

interface PoolAttrs extends Window {
  countIncludePad: boolean
}

function pool(kind: 'max' | 'avg') {
  return defineOp<PoolAttrs>({
    doc: kind === 'max' ? '2-D max pooling (pads, strides, dilations, ceil_mode, auto_pad)' : '2-D average pooling (pads, strides, count_include_pad, ceil_mode, auto_pad)',
    kind: kind === 'max' ? 'nonlinear' : 'linear',
    arity: [1, 1],
    since: 1,
    attrs: (r) => {
      if (kind === 'max' && r.int('storage_order', 0) !== 0) throw new OpError('MaxPool storage_order 1 is not supported')
      if (r.ints('kernel_shape').some((k) => k < 1)) throw new OpError('kernel_shape must be positive')
      return { ...parseWindow(r, undefined), countIncludePad: r.int('count_include_pad', 0) === 1 }
    },
    onnx: (a) => ({ ...windowOnnx(a, false), count_include_pad: a.countIncludePad ? { i: 1 } : undefined }),
    infer: (ins, a) => {
      requireFloat(ins[0])
      const [n, c, h, w] = spatial(ins[0], kind === 'max' ? 'MaxPool' : 'AveragePool')
      const win = resolveWindow(a, h, w)
      return { dtype: ins[0].dtype, shape: checkShape(spatialOut(ins[0], n, c, win.outH, win.outW)) }
    },
    eval: (ins, a, out) => {
      const x = ins[0]
      const [n, c, h, w] = spatial(x, 'pool')
      const { pads, k, s, d, outH, outW } = resolveWindow(a, h, w)
      const y = alloc(out)
      let o = 0
      for (let p = 0; p < n * c; p++) {
        const base = p * h * w
        for (let oh = 0; oh < outH; oh++)
          for (let ow = 0; ow < outW; ow++, o++) {
            const h0 = oh * s[0] - pads[0]
            const w0 = ow * s[1] - pads[1]
            let acc = kind === 'max' ? -Infinity : 0
            let count = 0
            for (let i = 0; i < k[0]; i++) {
              const ih = h0 + i * d[0]
              if (ih < 0 || ih >= h) continue
              for (let j = 0; j < k[1]; j++) {
                const iw = w0 + j * d[1]
                if (iw < 0 || iw >= w) continue
                const v = x.data[base + ih * w + iw]
                if (kind === 'max') acc = v > acc ? v : acc
                else acc += v
                count++
              }
            }
            if (kind === 'avg') {
              if (a.countIncludePad) {
                // taps inside the padded input (windows never start before the padding)
                const th = Math.min(k[0], Math.ceil((h + pads[2] - h0) / d[0]))
                const tw = Math.min(k[1], Math.ceil((w + pads[3] - w0) / d[1]))
                count = th * tw
              }
              acc = count > 0 ? acc / count : 0
            }
            y.data[o] = acc
          }
      }
      return y
    },
    secret: (ins, a, out): SecretForm => {
      const x = ins[0]
      const [, c, h, w] = spatial(x, 'AveragePool')
      const geom = geomOf(resolveWindow(a, h, w), c, h, w, c, c)
      if (kind === 'max') return { form: 'compare', what: 'max', window: geom }
      const prim: Prim = { kind: 'sumpool', in: x.shape, out: out.shape, geom }
      // the divisor per output: the op's own average of ones over the window sums of ones
      const ones = { dtype: 'float64' as const, shape: [1, 1, h, w], data: new Float64Array(h * w).fill(1) }
      const one = { ...prim, in: ones.shape, out: [1, 1, ...out.shape.slice(2)], geom: { ...prim.geom, c: 1, m: 1, group: 1 } }
      const avg: Float64Array = avgOf([ones], a, { dtype: 'float64', shape: one.out }).data
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
  Conv, ConvTranspose, Gemm, MatMul, BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool,
}
