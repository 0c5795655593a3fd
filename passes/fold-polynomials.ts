/**
 * fold-polynomials: every maximal elementwise subgraph that is a polynomial of degree >= 2 in one
 * value x, built from Add, Sub, Mul, Div by a constant, Neg, Pow with an integer exponent and
 * Identity with scalar or per-channel ([1, C, 1, ...]) constants, becomes one per-channel power-basis
 * `Poly` of x. This covers AESPA's basis-wise normalized Hermite activation (x*x, Sub 1, Div sqrt2, a
 * BatchNorm per basis term, which fold-batchnorm has made a Mul and Add, scales and sums: one degree-2
 * Poly per activation), polynomial kervolution (Conv -> Add(c) -> Pow(d), with c already in the conv bias by
 * fuse-bias: Poly x^d) and the square activation Mul(x, x), in any operand order. `of` records what
 * was folded: 'AESPA' (nodes from BatchNorms inside), 'Pow', 'Square' (exactly x^2) or 'Polynomial'.
 */
import type { Graph, Node } from '../ir/graph.js'
import { constantOf, consumers } from '../ir/graph.js'
import { integerExponent } from '../ir/ops/elementwise.js'
import { coeffsDegree, type PolyAttrs } from '../ir/ops/pi.js'
import { rewrite } from '../ir/rewrite.js'
import { isFloat, sameShape, type Tensor } from '../ir/tensor.js'
import { channelValues } from './match.js'
import type { Pass } from './pass.js'

const MAX_DEGREE = 32

/** Rows of power-basis coefficients in `root` (one row, or one per channel of axis 1). */
interface Form {
  root: string
  c: number[][]
  from: ReadonlySet<string>
}

const CONST = ''

function rowsOf(a: number[][], b: number[][]): [number[][], number[][]] {
  if (a.length === b.length) return [a, b]
  return a.length === 1 ? [b.map(() => a[0]), b] : [a, a.map(() => b[0])]
}

function addRows(a: number[][], b: number[][]): number[][] {
  const [x, y] = rowsOf(a, b)
  return x.map((r, i) => Array.from({ length: Math.max(r.length, y[i].length) }, (_, k) => (r[k] ?? 0) + (y[i][k] ?? 0)))
}

function mulRows(a: number[][], b: number[][]): number[][] {
  const [x, y] = rowsOf(a, b)
  return x.map((r, i) => {
    const out = new Array<number>(r.length + y[i].length - 1).fill(0)
    r.forEach((u, j) => y[i].forEach((v, k) => (out[j + k] += u * v)))
    return out
  })
}

function merge(a: Form, b: Form, c: number[][], op: string): Form | undefined {
  if (a.root !== CONST && b.root !== CONST && a.root !== b.root) return undefined
  if (coeffsDegree(c) > MAX_DEGREE) return undefined
  return { root: a.root === CONST ? b.root : a.root, c, from: new Set([...a.from, ...b.from, op]) }
}

function constForm(t: Tensor, out: Node): Form | undefined {
  const v = channelValues(t, out.type)
  return v && { root: CONST, c: v.map((x) => [x]), from: new Set() }
}

/** The form of `n` from its operands' forms, or undefined when n is not such a polynomial. */
function combine(n: Node, operand: (i: number) => Form | undefined, value: (i: number) => Tensor | undefined): Form | undefined {
  const op = n.origin?.op ?? n.op
  const [a, b] = [operand(0), n.inputs.length > 1 ? operand(1) : undefined]
  switch (n.op) {
    case 'Add':
    case 'Sub':
    case 'Mul': {
      if (!a || !b) return undefined
      if (n.op === 'Mul') return merge(a, b, mulRows(a.c, b.c), op)
      return merge(a, b, addRows(a.c, n.op === 'Sub' ? b.c.map((r) => r.map((v) => -v)) : b.c), op)
    }
    case 'Div': {
      if (!a || !b || b.root !== CONST || coeffsDegree(b.c) !== 0 || b.c.some((r) => r[0] === 0)) return undefined
      return merge(a, b, mulRows(a.c, b.c.map((r) => [1 / r[0]])), op)
    }
    case 'Neg':
      return a && merge(a, a, a.c.map((r) => r.map((v) => -v)), op)
    case 'Identity':
      return a
    case 'Pow': {
      const e = integerExponent(value(1))
      if (!a || e === undefined || e * coeffsDegree(a.c) > MAX_DEGREE) return undefined
      let c: number[][] = a.c.map(() => [1])
      for (let k = 0; k < e; k++) c = mulRows(c, a.c)
      return merge(a, a, c, op)
    }
  }
  return undefined
}

function label(f: Form): string {
  if (f.from.has('BatchNormalization')) return 'AESPA'
  if (f.from.has('Pow')) return 'Pow'
  if (f.c.every((r) => coeffsDegree([r]) === 2 && r[0] === 0 && r[1] === 0 && r[2] === 1)) return 'Square'
  return 'Polynomial'
}

function polyAttrs(f: Form): PolyAttrs {
  const d = coeffsDegree(f.c)
  let rows = f.c.map((r) => Array.from({ length: d + 1 }, (_, k) => r[k] ?? 0))
  if (rows.every((r) => r.every((v, k) => v === rows[0][k]))) rows = [rows[0]]
  return { basis: 'power', axis: 1, coeffs: rows, shift: rows.map(() => 0), scale: rows.map(() => 1), of: label(f) }
}

/** The nodes to replace, each with the Poly that computes it from its root. */
export function findPolynomials(g: Graph): Map<string, { root: string; attrs: PolyAttrs }> {
  const forms = new Map<string, Form>()
  const values = new Map<string, Tensor>()
  const types = new Map(g.nodes.map((n) => [n.name, n.type]))
  for (const n of g.nodes) {
    if (n.op === 'Constant') {
      values.set(n.name, constantOf(n)!)
      continue
    }
    const operand = (i: number): Form | undefined => {
      const x = n.inputs[i]
      if (!x) return undefined
      const v = values.get(x)
      if (v) return constForm(v, n)
      return sameShape(types.get(x)!.shape, n.type.shape) ? forms.get(x) : undefined
    }
    const f = isFloat(n.type.dtype) ? combine(n, operand, (i) => (n.inputs[i] ? values.get(n.inputs[i]) : undefined)) : undefined
    forms.set(n.name, f && f.root !== CONST ? f : { root: n.name, c: [[0, 1]], from: new Set() })
  }
  const users = consumers(g)
  const outputs = new Set(g.outputs)
  const found = new Map<string, { root: string; attrs: PolyAttrs }>()
  for (const [name, f] of forms) {
    if (f.root === name || coeffsDegree(f.c) < 2) continue
    const maximal = outputs.has(name) || (users.get(name) ?? []).some((u) => forms.get(u.name)?.root !== f.root)
    if (maximal) found.set(name, { root: f.root, attrs: polyAttrs(f) })
  }
  return found
}

export const foldPolynomials: Pass = {
  name: 'fold-polynomials',
  doc: 'Fold each maximal single-input elementwise polynomial subgraph (AESPA, kervolution Pow, x*x) into one per-channel Poly.',
  run: (g) => {
    const found = findPolynomials(g)
    if (found.size === 0) return g
    const ops = new Set(g.nodes.filter((n) => found.has(n.name)).map((n) => n.op))
    return rewrite(g, [
      {
        name: 'poly',
        on: [...ops],
        apply: (n) => {
          const p = found.get(n.name)
          return p && { op: 'Poly', inputs: [p.root], attrs: { ...p.attrs } }
        },
      },
    ])
  },
}
