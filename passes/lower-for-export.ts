/**
 * lower-for-export: PIC-only ops, and ONNX ops newer than the graph's opset, rewritten into standard
 * ONNX ops so the writer can emit any compiled graph:
 *   - Poly: sum_k c_k B_k((x - shift) / scale) in its own basis, per-channel coefficients as
 *     [1, C, 1, ...] constants (scalars when all channels agree); zero terms dropped, unit coefficients
 *     not multiplied, so x^2 is one Mul.
 *   - PartialRelu: Add(Mul(m, Relu(x)), Mul(Sub(1, m), x)), SENet's own spelling; with a polynomial
 *     p for the masked positions: x + m * (p(x) - x).
 *   - Silu: Mul(x, Sigmoid(x)).
 *   - Gelu below opset 20: the Erf spelling (or the Tanh one for approximate 'tanh').
 *   - HardSwish below opset 14: Mul(x, HardSigmoid(x)) with alpha 1/6, beta 1/2.
 */
import { rewrite, type Replacement, type RewriteContext, type Rule } from '../ir/rewrite.js'
import type { PartialReluAttrs, PolyAttrs } from '../ir/ops/pi.js'
import { tensor, type DType } from '../ir/tensor.js'
import { channelTensor } from './match.js'
import type { Pass } from './pass.js'

/** A value: an existing name, or an op not yet added (so the last one can become the replacement). */
type Lazy = string | Replacement

function make(cx: RewriteContext, v: Lazy, base: string): string {
  return typeof v === 'string' ? v : cx.add(v.op, v.inputs, v.attrs, base)
}

const op = (name: string, ...inputs: string[]): Replacement => ({ op: name, inputs, attrs: {} })

function scalarConst(cx: RewriteContext, v: number, dtype: DType, base: string): string {
  return cx.addConstant(tensor(dtype, [], [v]), base)
}

/**
 * The polynomial of x as ONNX ops, in its own basis (converting a high-degree Chebyshev fit to
 * monomials would lose every digit to cancellation once the coefficients are float32):
 * t = (x - shift) / scale per channel, then B_k(t) from lower ones (power: by squaring; Chebyshev:
 * T_2k = 2 T_k^2 - 1, T_2k+1 = 2 T_k T_k+1 - t; Hermite: the three-term recurrence), then
 * sum_k c_k B_k(t) with per-channel coefficient constants.
 */
export function lowerPoly(cx: RewriteContext, x: string, a: PolyAttrs, base: string): Lazy {
  const { shape, dtype } = cx.producer(x)!.type
  const channels = (v: number[], name: string) => cx.addConstant(channelTensor(collapse(v), shape.length, dtype, a.axis), `${base}_${name}`)
  const c = (v: number, name: string) => scalarConst(cx, v, dtype, `${base}_${name}`)
  const centered = a.shift.every((v) => v === 0) ? x : cx.add('Sub', [x, channels(a.shift, 'shift')], {}, `${base}_centered`)
  const t = a.scale.every((v) => v === 1) ? centered : cx.add('Div', [centered, channels(a.scale, 'scale')], {}, `${base}_t`)
  const cache = new Map<number, string>([[1, t]])
  const B = (k: number): string => {
    let v = cache.get(k)
    if (!v) cache.set(k, (v = make(cx, basisOp(k), `${base}_b${k}`)))
    return v
  }
  const twice = (u: string, w: string, k: number) => {
    const p = cx.add('Mul', [u, w], {}, `${base}_p${k}`)
    return cx.add('Add', [p, p], {}, `${base}_2p${k}`)
  }
  const basisOp = (k: number): Replacement => {
    const h = Math.floor(k / 2)
    if (a.basis === 'power') return k % 2 === 0 ? op('Mul', B(h), B(h)) : op('Mul', B(k - 1), t)
    if (a.basis === 'chebyshev') return k % 2 === 0 ? op('Sub', twice(B(h), B(h), k), c(1, 'one')) : op('Sub', twice(B(h), B(h + 1), k), t)
    const prev = k === 2 ? c(1, 'sqrt1') : cx.add('Mul', [B(k - 2), c(Math.sqrt(k - 1), `sqrt${k - 1}`)], {}, `${base}_r${k}`)
    const diff = cx.add('Sub', [cx.add('Mul', [t, B(k - 1)], {}, `${base}_tb${k}`), prev], {}, `${base}_d${k}`)
    return op('Div', diff, c(Math.sqrt(k), `sqrt${k}`))
  }
  const d = a.coeffs[0].length - 1
  const terms: Lazy[] = []
  for (let k = 1; k <= d; k++) {
    const col = a.coeffs.map((r) => r[k])
    if (col.every((v) => v === 0)) continue
    if (!col.every((v) => v === 1)) terms.push(op('Mul', channels(col, `c${k}`), B(k)))
    else terms.push(k === d && k > 1 ? basisOp(k) : B(k))
  }
  if (terms.length === 0) terms.push(op('Mul', x, c(0, 'zero')))
  let acc = terms[0]
  for (const term of terms.slice(1)) acc = op('Add', make(cx, acc, `${base}_sum`), make(cx, term, `${base}_term`))
  const c0 = a.coeffs.map((r) => r[0])
  return c0.some((v) => v !== 0) ? op('Add', make(cx, acc, `${base}_sum`), channels(c0, 'c0')) : acc
}

/** One value when all agree, else the list. */
function collapse(v: number[]): number[] {
  return v.every((x) => x === v[0]) ? [v[0]] : v
}

function final(v: Lazy): Replacement {
  return typeof v === 'string' ? op('Identity', v) : v
}

const poly: Rule = {
  name: 'poly',
  on: ['Poly'],
  apply: (n, cx) => final(lowerPoly(cx, n.inputs[0], n.attrs as unknown as PolyAttrs, n.name)),
}

const partialRelu: Rule = {
  name: 'partial-relu',
  on: ['PartialRelu'],
  apply: (n, cx) => {
    const a = n.attrs as unknown as PartialReluAttrs
    const x = n.inputs[0]
    const dt = n.type.dtype
    const m = cx.addConstant(tensor(dt, a.mask.shape, a.mask.data), `${n.name}_mask`)
    if (a.poly) {
      const p = make(cx, lowerPoly(cx, x, a.poly, n.name), `${n.name}_poly`)
      const diff = cx.add('Sub', [p, x], {}, `${n.name}_diff`)
      return op('Add', x, cx.add('Mul', [m, diff], {}, `${n.name}_masked`))
    }
    const relu = cx.add('Relu', [x], {}, `${n.name}_relu`)
    const on = cx.add('Mul', [m, relu], {}, `${n.name}_on`)
    const keep = cx.add('Sub', [scalarConst(cx, 1, dt, `${n.name}_one`), m], {}, `${n.name}_keep`)
    return op('Add', on, cx.add('Mul', [keep, x], {}, `${n.name}_off`))
  },
}

const silu: Rule = {
  name: 'silu',
  on: ['Silu'],
  apply: (n, cx) => op('Mul', n.inputs[0], cx.add('Sigmoid', [n.inputs[0]], {}, `${n.name}_sigmoid`)),
}

function geluRule(opset: number): Rule {
  return {
    name: 'gelu',
    on: ['Gelu'],
    apply: (n, cx) => {
      if (opset >= 20) return undefined
      const x = n.inputs[0]
      const dt = n.type.dtype
      const c = (v: number, s: string) => scalarConst(cx, v, dt, `${n.name}_${s}`)
      let inner: string
      if ((n.attrs as { approximate: string }).approximate === 'tanh') {
        const x3 = cx.add('Mul', [cx.add('Mul', [x, x], {}, `${n.name}_x2`), x], {}, `${n.name}_x3`)
        const cubic = cx.add('Add', [x, cx.add('Mul', [x3, c(0.044715, 'k')], {}, `${n.name}_kx3`)], {}, `${n.name}_cubic`)
        inner = cx.add('Tanh', [cx.add('Mul', [cubic, c(Math.sqrt(2 / Math.PI), 's')], {}, `${n.name}_arg`)], {}, `${n.name}_tanh`)
      } else inner = cx.add('Erf', [cx.add('Div', [x, c(Math.SQRT2, 'sqrt2')], {}, `${n.name}_div`)], {}, `${n.name}_erf`)
      const onePlus = cx.add('Add', [inner, c(1, 'one')], {}, `${n.name}_add`)
      return op('Mul', cx.add('Mul', [x, onePlus], {}, `${n.name}_mul`), c(0.5, 'half'))
    },
  }
}

function hardSwishRule(opset: number): Rule {
  return {
    name: 'hardswish',
    on: ['HardSwish'],
    apply: (n, cx) =>
      opset >= 14 ? undefined : op('Mul', n.inputs[0], cx.add('HardSigmoid', [n.inputs[0]], { alpha: 1 / 6, beta: 0.5 }, `${n.name}_hardsigmoid`)),
  }
}

export const lowerForExport: Pass = {
  name: 'lower-for-export',
  doc: 'Rewrite PIC-only ops (Poly, PartialRelu, Silu) and ops newer than the opset (Gelu, HardSwish) into standard ONNX ops.',
  run: (g) => rewrite(g, [poly, partialRelu, silu, geluRule(g.opset), hardSwishRule(g.opset)]),
}
