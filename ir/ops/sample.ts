/**
 * Sampling an image at computed positions, in float64:
 *
 *   GridSample  Y[n, c, i, j] = X[n, c] read at grid[n, i, j] = (x, y), normalized to [-1, 1] over the
 *               width and height: pixel x' = (x + 1) / 2 * (W - 1) with align_corners = 1, else
 *               ((x + 1) * W - 1) / 2 (likewise y'). mode bilinear (the 4 neighbours), nearest (round
 *               half to even) or bicubic (the 4 x 4 neighbours, cubic convolution with A = -0.75);
 *               padding_mode zeros (pixels outside read 0), border (positions clamped to the image)
 *               or reflection (positions reflected at the image's edges: its pixel centres with
 *               align_corners = 1, else its borders half a pixel further out, then clamped). For
 *               bicubic the padding applies to each neighbour's index.
 *   RoiAlign    Y[r, c, i, j] = the average (mode avg) or maximum (mode max) over a sampling_ratio^2
 *               grid (adaptive: ceil(roi size / output size) per axis when 0) of bilinear samples of
 *               X[batch_indices[r], c] in bin (i, j) of roi r = (x1, y1, x2, y2) * spatial_scale
 *               (minus 1/2 with coordinate_transformation_mode half_pixel; with output_half_pixel,
 *               the mode opset 10 has, the roi is at least 1 x 1). Samples beyond one pixel outside
 *               read 0; mode max takes, per sample, the largest of its four weighted corners, as
 *               onnxruntime and ONNX's reference do.
 *
 * Both are non-polynomial on a secret (the default form).
 */
import { defineOp, OpError, type OpDef } from '../op.js'
import { isInteger } from '../tensor.js'
import { requireFloat, withData } from './util.js'

type GridMode = 'bilinear' | 'nearest' | 'bicubic'
type Padding = 'zeros' | 'border' | 'reflection'

interface GridSampleAttrs {
  mode: GridMode
  padding: Padding
  alignCorners: boolean
}

/** Opset 20 renamed the modes bilinear and bicubic to linear and cubic. */
const MODE_NAMES: Record<string, GridMode> = { bilinear: 'bilinear', nearest: 'nearest', bicubic: 'bicubic' }
const MODE_NAMES_20: Record<string, GridMode> = { linear: 'bilinear', nearest: 'nearest', cubic: 'bicubic' }

/** Round half to even. */
function rint(x: number): number {
  const r = Math.round(x)
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** x reflected into [lo, hi] as often as needed. */
function reflect(x: number, lo: number, hi: number): number {
  const span = hi - lo
  if (span <= 0) return lo
  if (x >= lo && x <= hi) return x
  const dx = x < lo ? lo - x : x - hi
  const n = Math.floor(dx / span)
  const r = dx - n * span
  const fromLo = (x < lo) === (n % 2 === 0)
  return fromLo ? lo + r : hi - r
}

/** Cubic convolution weights of the 4 neighbours at offset t in [0, 1) from the second one (A = -0.75). */
function cubicWeights(t: number): number[] {
  const A = -0.75
  const near = (v: number) => ((A + 2) * v - (A + 3)) * v * v + 1
  const far = (v: number) => ((A * v - 5 * A) * v + 8 * A) * v - 4 * A
  return [far(t + 1), near(t), near(1 - t), far(2 - t)]
}

export const GridSample = defineOp<GridSampleAttrs>({
  doc: 'X [N, C, H, W] sampled at grid [N, Ho, Wo, 2] of normalized (x, y) positions: bilinear, nearest or bicubic, with zeros, border or reflection padding',
  kind: 'nonlinear',
  arity: [2, 2],
  since: 16,
  attrs: (r) => {
    const names = r.opset >= 20 ? MODE_NAMES_20 : MODE_NAMES
    const m = r.string('mode', r.opset >= 20 ? 'linear' : 'bilinear')
    const mode = names[m]
    if (!mode) throw new OpError(`GridSample mode '${m}' is not one of ${Object.keys(names).join(', ')}`)
    const padding = r.string('padding_mode', 'zeros')
    if (padding !== 'zeros' && padding !== 'border' && padding !== 'reflection') throw new OpError(`GridSample padding_mode '${padding}' is not one of zeros, border, reflection`)
    const ac = r.int('align_corners', 0)
    if (ac !== 0 && ac !== 1) throw new OpError(`GridSample align_corners ${ac} is not 0 or 1`)
    return { mode, padding, alignCorners: ac === 1 }
  },
  onnx: (a, opset) => ({
    mode: { s: opset >= 20 ? { bilinear: 'linear', nearest: 'nearest', bicubic: 'cubic' }[a.mode] : a.mode },
    padding_mode: a.padding !== 'zeros' ? { s: a.padding } : undefined,
    align_corners: a.alignCorners ? { i: 1 } : undefined,
  }),
  infer: (ins) => {
    const [x, grid] = ins
    requireFloat(x, 'GridSample X')
    requireFloat(grid, 'GridSample grid')
    if (x.shape.length !== 4) throw new OpError(`GridSample supports 4-D X [N, C, H, W] only, got [${x.shape.join(', ')}]`)
    if (grid.shape.length !== 4 || grid.shape[0] !== x.shape[0] || grid.shape[3] !== 2)
      throw new OpError(`GridSample grid must have shape [${x.shape[0]}, Ho, Wo, 2], got [${grid.shape.join(', ')}]`)
    return { dtype: x.dtype, shape: [x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]] }
  },
  eval: (ins, a, out) => {
    const [x, grid] = ins
    const [N, C, H, W] = x.shape
    const [, Ho, Wo] = grid.shape
    const y = new Float64Array(N * C * Ho * Wo)
    const unnorm = (v: number, size: number) => (a.alignCorners ? ((v + 1) / 2) * (size - 1) : ((v + 1) * size - 1) / 2)
    const [lo, hiOff] = a.alignCorners ? [0, 1] : [-0.5, 0.5]
    /** A position after padding (bilinear, nearest): clamped, or reflected then clamped. */
    const place = (v: number, size: number) => {
      if (a.padding === 'zeros') return v
      if (a.padding === 'reflection') v = reflect(v, lo, size - hiOff)
      return Math.min(Math.max(v, 0), size - 1)
    }
    /** An integer index after padding, or -1 for a zero (outside with zeros padding). */
    const index = (i: number, size: number) => {
      if (a.padding === 'zeros') return i >= 0 && i < size ? i : -1
      if (a.padding === 'reflection') i = Math.trunc(reflect(i, lo, size - hiOff))
      return Math.min(Math.max(i, 0), size - 1)
    }
    for (let n = 0; n < N; n++)
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++) {
          const g = ((n * Ho + i) * Wo + j) * 2
          let px = unnorm(grid.data[g], W)
          let py = unnorm(grid.data[g + 1], H)
          // taps: flat pixel offsets within a channel (-1 reads 0) and their weights
          const taps: number[] = []
          const weights: number[] = []
          if (a.mode === 'bicubic') {
            const x0 = Math.floor(px) - 1
            const y0 = Math.floor(py) - 1
            const wx = cubicWeights(px - x0 - 1)
            const wy = cubicWeights(py - y0 - 1)
            for (let u = 0; u < 4; u++)
              for (let v = 0; v < 4; v++) {
                const yi = index(y0 + u, H)
                const xi = index(x0 + v, W)
                taps.push(yi < 0 || xi < 0 ? -1 : yi * W + xi)
                weights.push(wy[u] * wx[v])
              }
          } else {
            px = place(px, W)
            py = place(py, H)
            const at = (yi: number, xi: number) => (yi >= 0 && yi < H && xi >= 0 && xi < W ? yi * W + xi : -1)
            if (a.mode === 'nearest') {
              taps.push(at(rint(py), rint(px)))
              weights.push(1)
            } else {
              const x1 = Math.floor(px)
              const y1 = Math.floor(py)
              const dx = px - x1
              const dy = py - y1
              taps.push(at(y1, x1), at(y1, x1 + 1), at(y1 + 1, x1), at(y1 + 1, x1 + 1))
              weights.push((1 - dy) * (1 - dx), (1 - dy) * dx, dy * (1 - dx), dy * dx)
            }
          }
          for (let c = 0; c < C; c++) {
            const base = (n * C + c) * H * W
            let s = 0
            for (let k = 0; k < taps.length; k++) if (taps[k] >= 0) s += weights[k] * x.data[base + taps[k]]
            y[((n * C + c) * Ho + i) * Wo + j] = s
          }
        }
    return withData(out, y)
  },
})

interface RoiAlignAttrs {
  mode: 'avg' | 'max'
  outputHeight: number
  outputWidth: number
  samplingRatio: number
  spatialScale: number
  halfPixel: boolean
}

export const RoiAlign = defineOp<RoiAlignAttrs>({
  doc: 'per roi [x1, y1, x2, y2] of image batch_indices[r]: an output_height x output_width grid of bins, each the average or maximum of bilinear samples',
  kind: 'nonlinear',
  arity: [3, 3],
  since: 10,
  attrs: (r) => {
    const mode = r.string('mode', 'avg')
    if (mode !== 'avg' && mode !== 'max') throw new OpError(`RoiAlign mode '${mode}' is not avg or max`)
    if (r.has('coordinate_transformation_mode') && r.opset < 16) throw new OpError('RoiAlign has no coordinate_transformation_mode before opset 16')
    const ctm = r.string('coordinate_transformation_mode', r.opset >= 16 ? 'half_pixel' : 'output_half_pixel')
    if (ctm !== 'half_pixel' && ctm !== 'output_half_pixel') throw new OpError(`RoiAlign coordinate_transformation_mode '${ctm}' is not half_pixel or output_half_pixel`)
    const a = {
      mode,
      outputHeight: r.int('output_height', 1),
      outputWidth: r.int('output_width', 1),
      samplingRatio: r.int('sampling_ratio', 0),
      spatialScale: r.float('spatial_scale', 1),
      halfPixel: ctm === 'half_pixel',
    } as const
    if (a.outputHeight <= 0 || a.outputWidth <= 0) throw new OpError(`RoiAlign output_height and output_width must be positive, got ${a.outputHeight} and ${a.outputWidth}`)
    if (a.samplingRatio < 0) throw new OpError(`RoiAlign sampling_ratio must not be negative, got ${a.samplingRatio}`)
    return a
  },
  onnx: (a, opset) => {
    if (a.halfPixel && opset < 16) throw new OpError('RoiAlign coordinate_transformation_mode half_pixel has no ONNX form before opset 16')
    return {
      mode: a.mode !== 'avg' ? { s: a.mode } : undefined,
      output_height: a.outputHeight !== 1 ? { i: a.outputHeight } : undefined,
      output_width: a.outputWidth !== 1 ? { i: a.outputWidth } : undefined,
      sampling_ratio: a.samplingRatio !== 0 ? { i: a.samplingRatio } : undefined,
      spatial_scale: a.spatialScale !== 1 ? { f: a.spatialScale } : undefined,
      coordinate_transformation_mode: opset >= 16 ? { s: a.halfPixel ? 'half_pixel' : 'output_half_pixel' } : undefined,
    }
  },
  infer: (ins, a) => {
    const [x, rois, idx] = ins
    requireFloat(x, 'RoiAlign X')
    if (x.shape.length !== 4) throw new OpError(`RoiAlign X must be [N, C, H, W], got [${x.shape.join(', ')}]`)
    if (rois.dtype !== x.dtype) throw new OpError(`RoiAlign rois must be ${x.dtype} like X, got ${rois.dtype}`)
    if (rois.shape.length !== 2 || rois.shape[1] !== 4) throw new OpError(`RoiAlign rois must be [num_rois, 4], got [${rois.shape.join(', ')}]`)
    if (!isInteger(idx.dtype)) throw new OpError(`RoiAlign batch_indices must be an integer tensor, got ${idx.dtype}`)
    if (idx.shape.length !== 1 || idx.shape[0] !== rois.shape[0]) throw new OpError(`RoiAlign batch_indices must be [${rois.shape[0]}], got [${idx.shape.join(', ')}]`)
    return { dtype: x.dtype, shape: [rois.shape[0], x.shape[1], a.outputHeight, a.outputWidth] }
  },
  eval: (ins, a, out) => {
    const [x, rois, idx] = ins
    const [N, C, H, W] = x.shape
    const R = rois.shape[0]
    const oh = a.outputHeight
    const ow = a.outputWidth
    const y = new Float64Array(R * C * oh * ow)
    const off = a.halfPixel ? 0.5 : 0
    for (let r = 0; r < R; r++) {
      const n = idx.data[r]
      if (!(Number.isInteger(n) && n >= 0 && n < N)) throw new OpError(`RoiAlign batch index ${n} is out of range for ${N} images`)
      const [x1, y1, x2, y2] = Array.from(rois.data.subarray(r * 4, r * 4 + 4), (v) => v * a.spatialScale - off)
      let rw = x2 - x1
      let rh = y2 - y1
      if (!a.halfPixel) {
        rw = Math.max(rw, 1)
        rh = Math.max(rh, 1)
      }
      const bw = rw / ow
      const bh = rh / oh
      const gh = a.samplingRatio > 0 ? a.samplingRatio : Math.ceil(rh / oh)
      const gw = a.samplingRatio > 0 ? a.samplingRatio : Math.ceil(rw / ow)
      const count = Math.max(gh * gw, 1)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          // the bin's samples: four pixel offsets and weights each
          const taps: number[] = []
          const weights: number[] = []
          for (let u = 0; u < gh; u++) {
            let sy = y1 + i * bh + ((u + 0.5) * bh) / gh
            for (let v = 0; v < gw; v++) {
              let sx = x1 + j * bw + ((v + 0.5) * bw) / gw
              if (sy < -1 || sy > H || sx < -1 || sx > W) {
                taps.push(0, 0, 0, 0)
                weights.push(0, 0, 0, 0)
                continue
              }
              sy = Math.max(sy, 0)
              sx = Math.max(sx, 0)
              let ylo = Math.floor(sy)
              let xlo = Math.floor(sx)
              let yhi = ylo + 1
              let xhi = xlo + 1
              if (ylo >= H - 1) sy = yhi = ylo = H - 1
              if (xlo >= W - 1) sx = xhi = xlo = W - 1
              const ly = sy - ylo
              const lx = sx - xlo
              taps.push(ylo * W + xlo, ylo * W + xhi, yhi * W + xlo, yhi * W + xhi)
              weights.push((1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx)
            }
          }
          for (let c = 0; c < C; c++) {
            const base = (n * C + c) * H * W
            let acc = a.mode === 'avg' ? 0 : -Infinity
            for (let s = 0; s < taps.length; s += 4) {
              if (a.mode === 'avg') for (let q = 0; q < 4; q++) acc += weights[s + q] * x.data[base + taps[s + q]]
              else for (let q = 0; q < 4; q++) acc = Math.max(acc, weights[s + q] * x.data[base + taps[s + q]])
            }
            y[((r * C + c) * oh + i) * ow + j] = a.mode === 'avg' ? acc / count : taps.length ? acc : 0
          }
        }
    }
    return withData(out, y)
  },
})

export const SAMPLE_OPS: Record<string, OpDef> = { GridSample, RoiAlign }
