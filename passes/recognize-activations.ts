/**
 * recognize-activations: activation functions that exporters spell out in primitive ops become one
 * op each, whatever the operand order and whether constants are Constant nodes or initializers:
 *   - GELU: x * (1 + Erf(x / sqrt2)) * 0.5 (Div by sqrt2 or Mul by 1/sqrt2, factors in any grouping)
 *     -> Gelu; the tanh form 0.5 x (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3))) -> Gelu 'tanh'.
 *   - SiLU / Swish: x * Sigmoid(x) -> Silu.
 *   - HardSwish: x * HardSigmoid(x) (alpha 1/6, beta 1/2) or x * Clip(x + 3, 0, 6) / 6 -> HardSwish.
 *   - SENet partial ReLU: m * Relu(x) + (1 - m) * x, or x + m * (Relu(x) - x), with a constant 0/1
 *     mask m (per channel or per pixel) -> PartialRelu carrying m (Relu when m is all ones, x when
 *     all zeros).
 * Constants stored as float32 match within a relative 1e-6.
 */
import { rewrite, type Replacement, type RewriteContext, type Rule } from '../ir/rewrite.js'
import { broadcastShapes, broadcastTo } from '../ir/ops/util.js'
import { sameShape, tensor, type Tensor } from '../ir/tensor.js'
import { near, nodeProduct, producerOf, product, scalarOf, singleTerm, type Product } from './match.js'
import type { Pass } from './pass.js'

/** The non-constant term t of `name` = k * t (a lone term), with its k. */
function scaled(cx: RewriteContext, name: string): { k: number; x: string } | undefined {
  const p = product(cx, name)
  const x = singleTerm(p)
  return x === undefined ? undefined : { k: p.k, x }
}

/** Add(f, c) with c a scalar constant (either order): f and c. */
function plusConstant(cx: RewriteContext, name: string): { f: string; c: number } | undefined {
  const n = producerOf(cx, name, 'Add')
  if (!n) return undefined
  for (const i of [0, 1]) {
    const c = scalarOf(cx, n.inputs[1 - i])
    if (c !== undefined && cx.constant(n.inputs[i]) === undefined) return { f: n.inputs[i], c }
  }
  return undefined
}

/** For a product of exactly two terms, try `match(x, other)` both ways round. */
function pairs(p: Product, match: (x: string, other: string) => boolean): string | undefined {
  if (p.consts.length !== 0 || p.terms.length !== 2) return undefined
  const [a, b] = p.terms
  if (match(a, b)) return a
  if (match(b, a)) return b
  return undefined
}

/** 1 + F(z) with F the given unary op: returns z. */
function onePlus(cx: RewriteContext, name: string, op: string): string | undefined {
  const s = plusConstant(cx, name)
  const f = s && near(s.c, 1) ? producerOf(cx, s.f, op) : undefined
  return f?.inputs[0]
}

/** x + 0.044715 x^3 (the cubic Pow or x*x*x, any grouping). */
function tanhInner(cx: RewriteContext, name: string, x: string): boolean {
  const n = producerOf(cx, name, 'Add')
  if (!n) return false
  return [0, 1].some((i) => {
    if (n.inputs[i] !== x) return false
    const p = product(cx, n.inputs[1 - i])
    if (p.consts.length || !near(p.k, 0.044715)) return false
    if (p.terms.length === 3) return p.terms.every((t) => t === x)
    const pw = p.terms.length === 1 ? producerOf(cx, p.terms[0], 'Pow') : undefined
    return !!pw && pw.inputs[0] === x && scalarOf(cx, pw.inputs[1]) === 3
  })
}

const gelu: Rule = {
  name: 'gelu',
  on: ['Mul', 'Div'],
  apply: (n, cx) => {
    const p = nodeProduct(cx, n)
    if (!near(p.k, 0.5)) return undefined
    const erfX = pairs(p, (x, o) => {
      const z = onePlus(cx, o, 'Erf')
      const s = z && scaled(cx, z)
      return !!s && s.x === x && near(s.k, Math.SQRT1_2)
    })
    if (erfX) return { op: 'Gelu', inputs: [erfX], attrs: { approximate: 'none' } }
    const tanhX = pairs(p, (x, o) => {
      const z = onePlus(cx, o, 'Tanh')
      const s = z && scaled(cx, z)
      return !!s && near(s.k, Math.sqrt(2 / Math.PI)) && tanhInner(cx, s.x, x)
    })
    return tanhX ? { op: 'Gelu', inputs: [tanhX], attrs: { approximate: 'tanh' } } : undefined
  },
}

const silu: Rule = {
  name: 'silu',
  on: ['Mul'],
  apply: (n, cx) => {
    const p = nodeProduct(cx, n)
    const x = near(p.k, 1, 0) ? pairs(p, (x, o) => producerOf(cx, o, 'Sigmoid')?.inputs[0] === x) : undefined
    return x ? { op: 'Silu', inputs: [x], attrs: {} } : undefined
  },
}

function clipBounds(cx: RewriteContext, name: string): { x: string; lo: number; hi: number } | undefined {
  const c = producerOf(cx, name, 'Clip')
  if (!c) return undefined
  const a = c.attrs as { min?: number; max?: number }
  const lo = c.inputs[1] ? scalarOf(cx, c.inputs[1]) : a.min
  const hi = c.inputs[2] ? scalarOf(cx, c.inputs[2]) : a.max
  return lo === undefined || hi === undefined ? undefined : { x: c.inputs[0], lo, hi }
}

const hardSwish: Rule = {
  name: 'hardswish',
  on: ['Mul', 'Div'],
  apply: (n, cx) => {
    const p = nodeProduct(cx, n)
    const viaSigmoid = near(p.k, 1)
      ? pairs(p, (x, o) => {
          const h = producerOf(cx, o, 'HardSigmoid')
          const a = h?.attrs as { alpha: number; beta: number } | undefined
          return !!h && h.inputs[0] === x && near(a!.alpha, 1 / 6) && near(a!.beta, 0.5)
        })
      : undefined
    const viaClip = near(p.k, 1 / 6)
      ? pairs(p, (x, o) => {
          const c = clipBounds(cx, o)
          const s = c && c.lo === 0 && c.hi === 6 ? plusConstant(cx, c.x) : undefined
          return !!s && s.f === x && s.c === 3
        })
      : undefined
    const x = viaSigmoid ?? viaClip
    return x ? { op: 'HardSwish', inputs: [x], attrs: {} } : undefined
  },
}

/** k * prod(consts) as one tensor (a scalar tensor when there are no tensor factors). */
function factorTensor(p: Product, dtype: Tensor['dtype']): Tensor | undefined {
  let t = tensor(dtype, [], [p.k])
  for (const c of p.consts) {
    let shape: number[]
    try {
      shape = broadcastShapes([t.shape, c.shape])
    } catch {
      return undefined
    }
    const [a, b] = [broadcastTo(t, shape), broadcastTo(c, shape)]
    t = tensor(dtype, shape, a.data.map((v, i) => v * b.data[i]))
  }
  return t
}

function partialRelu(x: string, m: Tensor, cx: RewriteContext): Replacement | string | undefined {
  const xt = cx.producer(x)!.type
  if (m.data.some((v) => v !== 0 && v !== 1)) return undefined
  try {
    if (!sameShape(broadcastShapes([xt.shape, m.shape]), xt.shape)) return undefined
  } catch {
    return undefined
  }
  if (m.data.every((v) => v === 1)) return { op: 'Relu', inputs: [x], attrs: {} }
  if (m.data.every((v) => v === 0)) return x
  return { op: 'PartialRelu', inputs: [x], attrs: { mask: tensor(xt.dtype, m.shape, m.data) } }
}

/** Do m and r add up to 1 everywhere (after broadcasting)? */
function complementary(m: Tensor, r: Tensor): boolean {
  try {
    const shape = broadcastShapes([m.shape, r.shape])
    const [a, b] = [broadcastTo(m, shape), broadcastTo(r, shape)]
    return a.data.every((v, i) => v + b.data[i] === 1)
  } catch {
    return false
  }
}

const partial: Rule = {
  name: 'partial-relu',
  on: ['Add'],
  apply: (n, cx) => {
    const dtype = n.type.dtype
    for (const i of [0, 1]) {
      const pr = product(cx, n.inputs[i])
      const relu = pr.terms.length === 1 ? producerOf(cx, pr.terms[0], 'Relu') : undefined
      if (relu) {
        const x = relu.inputs[0]
        const m = factorTensor(pr, dtype)
        const px = product(cx, n.inputs[1 - i])
        const r = px.terms.length === 1 && px.terms[0] === x ? factorTensor(px, dtype) : undefined
        if (m && r && complementary(m, r)) return partialRelu(x, m, cx)
      }
      const x = n.inputs[1 - i]
      const sub = pr.terms.length === 1 ? producerOf(cx, pr.terms[0], 'Sub') : undefined
      const m = factorTensor(pr, dtype)
      if (sub && m && sub.inputs[1] === x && producerOf(cx, sub.inputs[0], 'Relu')?.inputs[0] === x) return partialRelu(x, m, cx)
    }
    return undefined
  },
}

export const recognizeActivations: Pass = {
  name: 'recognize-activations',
  doc: 'Recognize GELU (erf and tanh forms), SiLU, HardSwish and SENet partial ReLU spelled out in primitive ops.',
  run: (g) => rewrite(g, [gelu, silu, hardSwish, partial]),
}
