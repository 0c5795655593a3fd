/**
 * GraphBuilder: the one way nodes come into being. Each node's type is inferred by its op when it is
 * added, with the values of compile-time-constant inputs available to inference (Reshape's shape,
 * Pad's pads); small constant subgraphs such as Shape -> Gather -> Concat are evaluated on demand.
 */
import { PicError } from './errors.js'
import { constantOf, inputDims, type Attrs, type Graph, type Node, type Origin } from './graph.js'
import { OpError, type OpDef } from './op.js'
import { OPS } from './ops/index.js'
import { checkShape } from './ops/util.js'
import { sizeOf, type DType, type Tensor, type TensorType } from './tensor.js'

/** A problem with one node: carries the node's origin so callers can name it. */
export class GraphError extends PicError {
  constructor(
    message: string,
    readonly node?: { name: string; op: string; origin?: Origin },
  ) {
    super(message)
  }
}

/** Largest constant subgraph result evaluated during inference (shape arithmetic stays far below). */
const FOLD_LIMIT = 1 << 16

const PENDING = Symbol('pending')

/** One node being folded by `constantValue`: its next input to resolve and the values so far. */
interface Frame {
  node: Node
  def: OpDef
  k: number
  ins: Tensor[]
}

export class GraphBuilder {
  private readonly nodes: Node[] = []
  private readonly byName = new Map<string, Node>()
  private readonly folded = new Map<string, Tensor | null>()
  readonly symbols: Record<string, number>

  constructor(
    readonly name: string,
    readonly opset: number,
    symbols: Record<string, number> = {},
  ) {
    this.symbols = { ...symbols }
  }

  has(name: string): boolean {
    return this.byName.has(name)
  }

  get(name: string): Node | undefined {
    return this.byName.get(name)
  }

  /** A name not used yet, derived from `base`. */
  fresh(base: string): string {
    if (!this.byName.has(base)) return base
    for (let i = 1; ; i++) if (!this.byName.has(`${base}_${i}`)) return `${base}_${i}`
  }

  /** A graph input; string dims are symbols bound from `symbols` (default 1). */
  input(name: string, dtype: DType, dims: readonly (number | string)[], origin?: Origin): Node {
    const shape = dims.map((d) => {
      if (typeof d === 'number') return d
      if (!(d in this.symbols)) this.symbols[d] = 1
      return this.symbols[d]
    })
    let type: TensorType
    try {
      type = { dtype, shape: checkShape(shape) }
    } catch (e) {
      throw new GraphError(`input '${name}': ${(e as Error).message}`, { name, op: 'Input', origin })
    }
    return this.push({ name, op: 'Input', inputs: [], attrs: { dims: [...dims], dtype, shape: type.shape }, type, origin })
  }

  constant(name: string, value: Tensor, origin?: Origin): Node {
    return this.push({ name, op: 'Constant', inputs: [], attrs: { value }, type: { dtype: value.dtype, shape: value.shape }, origin })
  }

  /** Add a node whose attributes are already parsed; its type comes from the op's `infer`. */
  add(op: string, inputs: readonly string[], attrs: Attrs, opts: { name?: string; origin?: Origin } = {}): Node {
    const name = opts.name ?? this.fresh(op.toLowerCase())
    const where = { name, op, origin: opts.origin }
    const def = OPS[op]
    if (!def) throw new GraphError(`unknown op '${op}'`, where)
    if (op === 'Input' || op === 'Constant') throw new GraphError(`use input() or constant() for ${op}`, where)
    const [lo, hi] = def.arity
    if (inputs.length < lo || inputs.length > hi)
      throw new GraphError(`takes ${lo === hi ? lo : `${lo} to ${hi}`} inputs, got ${inputs.length}`, where)
    const types: TensorType[] = []
    for (const [i, inp] of inputs.entries()) {
      if (!inp) {
        if (i < lo) throw new GraphError(`required input ${i} is missing`, where)
        types.push(undefined as unknown as TensorType)
        continue
      }
      const src = this.byName.get(inp)
      if (!src) throw new GraphError(`input '${inp}' is not produced by any node, initializer or graph input`, where)
      types.push(src.type)
    }
    let type: TensorType
    try {
      type = def.infer(types, attrs, { constant: (i) => (inputs[i] ? this.constantValue(inputs[i]) : undefined) })
      checkShape(type.shape)
    } catch (e) {
      if (e instanceof OpError || e instanceof GraphError) throw new GraphError(e.message, where)
      throw e
    }
    return this.push({ name, op, inputs: [...inputs], attrs, type, origin: opts.origin })
  }

  /** Insert an existing node unchanged after checking that its inputs exist (for rewrites). */
  copy(n: Node): Node {
    if (n.op === 'Input' || n.op === 'Constant') return this.push(n)
    for (const i of n.inputs) if (i && !this.byName.has(i)) throw new GraphError(`input '${i}' is missing`, n)
    return this.push(n)
  }

  /**
   * The value of a node when it is known at compile time, else undefined. Constant subgraphs of
   * small results are evaluated on demand with an explicit stack (deep chains cost no call depth),
   * stopping at the first input that is not constant, and memoized.
   */
  constantValue(name: string): Tensor | undefined {
    const first = this.knownValue(name)
    if (first !== PENDING) return first
    const stack: Frame[] = [this.frame(name)]
    while (stack.length > 0) {
      const f = stack[stack.length - 1]
      if (f.k === f.node.inputs.length) {
        let v: Tensor | null = null
        try {
          v = f.def.eval(f.ins, f.node.attrs, f.node.type)
        } catch {
          v = null
        }
        this.folded.set(f.node.name, v)
        stack.pop()
        continue
      }
      const i = f.node.inputs[f.k]
      const v = i ? this.knownValue(i) : undefined
      if (v === PENDING) {
        stack.push(this.frame(i))
        continue
      }
      if (v || !i) f.ins.push(v as Tensor)
      else if (f.def.kind === 'source') f.ins.push({ ...this.byName.get(i)!.type, data: new Float64Array(0) })
      else {
        this.folded.set(f.node.name, null)
        stack.pop()
        continue
      }
      f.k++
    }
    return this.folded.get(name) ?? undefined
  }

  /** A value already known (or known to be absent), or PENDING when it needs evaluating. */
  private knownValue(name: string): Tensor | undefined | typeof PENDING {
    const n = this.byName.get(name)
    if (!n || n.op === 'Input') return undefined
    if (n.op === 'Constant') return constantOf(n)!
    const memo = this.folded.get(name)
    if (memo !== undefined) return memo ?? undefined
    if (sizeOf(n.type.shape) > FOLD_LIMIT) {
      this.folded.set(name, null)
      return undefined
    }
    return PENDING
  }

  private frame(name: string): Frame {
    const node = this.byName.get(name)!
    return { node, def: OPS[node.op], k: 0, ins: [] }
  }

  private push(n: Node): Node {
    if (this.byName.has(n.name)) throw new GraphError(`value '${n.name}' is defined twice`, n)
    this.nodes.push(n)
    this.byName.set(n.name, n)
    return n
  }

  build(outputs: readonly string[]): Graph {
    for (const o of outputs) if (!this.byName.has(o)) throw new GraphError(`graph output '${o}' is not produced by any node`)
    return { name: this.name, nodes: [...this.nodes], outputs: [...outputs], opset: this.opset, symbols: { ...this.symbols } }
  }
}

/**
 * The same graph with its symbolic dims bound to new values (for example another batch size):
 * every type is inferred again.
 */
export function instantiate(g: Graph, symbols: Record<string, number>): Graph {
  const b = new GraphBuilder(g.name, g.opset, { ...g.symbols, ...symbols })
  for (const n of g.nodes) {
    if (n.op === 'Input') {
      b.input(n.name, n.type.dtype, inputDims(n), n.origin)
    } else if (n.op === 'Constant') b.copy(n)
    else b.add(n.op, n.inputs, n.attrs, { name: n.name, origin: n.origin })
  }
  return b.build(g.outputs)
}

/** The graph with its first input's symbolic batch dim bound to `batch`; undefined when that dim is a number. */
export function withBatchSize(g: Graph, batch: number): Graph | undefined {
  const input = g.nodes.find((n) => n.op === 'Input')
  const dim0 = input ? inputDims(input)[0] : undefined
  return typeof dim0 === 'string' ? instantiate(g, { [dim0]: batch }) : undefined
}

/**
 * Each value's dims with the symbolic ones named. The graph is instantiated once more with every
 * symbol in `symbols` moved to its own new value (above all current ones, so no two coincide); a dim
 * that moves the way one symbol moved is that symbol, a dim that moves otherwise (a product, say) is
 * undefined, and a dim that stays is its number. All numbers when the moved graph does not build.
 */
export function symbolicShapes(g: Graph, symbols: readonly string[] = Object.keys(g.symbols)): (name: string) => (number | string | undefined)[] {
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  const top = Math.max(0, ...Object.values(g.symbols))
  const moved = Object.fromEntries(symbols.map((s, i) => [s, top + 7 + 3 * i]))
  let other: Map<string, Node> | undefined
  try {
    other = symbols.length ? new Map(instantiate(g, moved).nodes.map((n) => [n.name, n])) : undefined
  } catch {
    other = undefined
  }
  return (name) => {
    const shape = byName.get(name)!.type.shape
    const alt = other?.get(name)?.type.shape
    if (!alt || alt.length !== shape.length) return [...shape]
    return shape.map((d, i) => (alt[i] === d ? d : symbols.find((s) => g.symbols[s] === d && moved[s] === alt[i])))
  }
}
