/**
 * N-D sliding windows (Conv, ConvTranspose, pooling, MaxUnpool) over the spatial dims of
 * [N, C, D1, ..., Dn]: the attributes (kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
 * and their resolution on an input. Along spatial dim i, output o's tap t reads input coordinate
 *   o * strides[i] - pads[i] + t * dilations[i]   (outside [0, D_i): padding),
 * and the output size is floor-or-ceil((D_i + pads[i] + pads[n + i] - ((k_i - 1) d_i + 1)) / s_i) + 1.
 * This file holds no ops.
 */
import { OpError, type OnnxAttrs, type RawAttrs } from '../op.js'
import { MAX_ELEMENTS, sizeOf, stridesOf } from '../tensor.js'
import { nextIndex } from './util.js'

/** A Conv or pooling window as the attributes give it (pads: all begins, then all ends). */
export interface Window {
  kernel: number[]
  strides: number[]
  pads: number[]
  dilations: number[]
  autoPad: string
  ceil: boolean
}

export function parseWindow(r: RawAttrs, kernel: number[] | undefined): Window {
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
export function windowOnnx(w: Window, all: boolean): OnnxAttrs {
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
export function unknownKernel(r: RawAttrs): number[] {
  if (r.has('kernel_shape')) return r.ints('kernel_shape')
  const rank = r.has('strides') ? r.ints('strides').length : r.has('dilations') ? r.ints('dilations').length : r.has('pads') ? r.ints('pads').length / 2 : 2
  return new Array(rank).fill(0)
}

/** A 1-D window as the 2-D window of height 1 (others unchanged). */
export function as2d(w: Window): Window {
  if (w.kernel.length !== 1) return w
  return { ...w, kernel: [1, w.kernel[0]], strides: [1, w.strides[0]], dilations: [1, w.dilations[0]], pads: [0, w.pads[0], 0, w.pads[1]] }
}

/** A window on a given input: kernel, strides, dilations, explicit pads (begins, ends) and output size per spatial dim. */
export interface Resolved {
  k: number[]
  s: number[]
  d: number[]
  begin: number[]
  end: number[]
  out: number[]
}

/** The window on spatial input dims `ins` (auto_pad resolved); the window's rank must be theirs. */
export function resolveND(w: Window, ins: readonly number[]): Resolved {
  const n = ins.length
  if (w.kernel.length !== n) throw new OpError(`the window has ${w.kernel.length} spatial dims but the input has ${n}`)
  const r: Resolved = { k: [...w.kernel], s: [...w.strides], d: [...w.dilations], begin: w.pads.slice(0, n), end: w.pads.slice(n, 2 * n), out: [] }
  for (let i = 0; i < n; i++) {
    const ek = (r.k[i] - 1) * r.d[i] + 1
    if (w.autoPad === 'VALID') {
      r.begin[i] = r.end[i] = 0
    } else if (w.autoPad !== 'NOTSET') {
      const o = Math.ceil(ins[i] / r.s[i])
      const total = Math.max(0, (o - 1) * r.s[i] + ek - ins[i])
      const small = Math.floor(total / 2)
      r.begin[i] = w.autoPad === 'SAME_UPPER' ? small : total - small
      r.end[i] = total - r.begin[i]
    }
    const padded = ins[i] + r.begin[i] + r.end[i]
    const span = padded - ek
    if (span < 0) throw new OpError(`window ${ek} is larger than the padded input ${padded}`)
    let o = (w.ceil ? Math.ceil(span / r.s[i]) : Math.floor(span / r.s[i])) + 1
    // with ceil_mode, the last window must start inside the input or its leading padding
    if (w.ceil && (o - 1) * r.s[i] >= ins[i] + r.begin[i]) o--
    r.out.push(o)
  }
  return r
}

/**
 * For output position p and kernel tap q (both C order), at [p * K + q], the C-order offset of the
 * input element the tap reads within one [D1, ..., Dn] plane, or -1 where it reads padding.
 */
export function tapTable(r: Resolved, ins: readonly number[]): Int32Array {
  const n = ins.length
  const P = sizeOf(r.out)
  const K = sizeOf(r.k)
  if (P * K > MAX_ELEMENTS) throw new OpError(`the window has ${P * K} taps, more than the ${MAX_ELEMENTS} PIC allows`)
  const st = stridesOf(ins)
  const tab = new Int32Array(P * K)
  const o = new Array<number>(n).fill(0)
  const t = new Array<number>(n).fill(0)
  let e = 0
  for (let p = 0; p < P; p++, nextIndex(o, r.out))
    for (let q = 0; q < K; q++, nextIndex(t, r.k), e++) {
      let off = 0
      for (let i = 0; i < n && off >= 0; i++) {
        const c = o[i] * r.s[i] - r.begin[i] + t[i] * r.d[i]
        off = c >= 0 && c < ins[i] ? off + c * st[i] : -1
      }
      tab[e] = off
    }
  return tab
}
