/**
 * The op definition interface. One table entry per op (see ir/ops/index.ts) is the only place that
 * knows what an op means: attribute parsing with defaults, type inference, float64 reference
 * evaluation and cost metadata. Analyses ask the op; they never switch on op names.
 */
import { PicError } from './errors.js'
import type { SecretForm } from './linear.js'
import type { Tensor, TensorType } from './tensor.js'

/** An error in one op's attributes, inputs or types; the caller adds file and node. */
export class OpError extends PicError {}

export type AttrValue = number | string | Tensor | number[] | string[] | Tensor[]

/** Attribute reader over raw ONNX attributes, with defaults and validation. */
export class RawAttrs {
  constructor(
    readonly values: ReadonlyMap<string, AttrValue>,
    readonly opset: number,
  ) {}
  static of(obj: Record<string, AttrValue>, opset = 21): RawAttrs {
    return new RawAttrs(new Map(Object.entries(obj)), opset)
  }
  has(name: string): boolean {
    return this.values.has(name)
  }
  int(name: string, dflt?: number): number {
    const v = this.values.get(name)
    if (v === undefined) {
      if (dflt === undefined) throw new OpError(`missing required attribute '${name}'`)
      return dflt
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new OpError(`attribute '${name}' must be an integer`)
    return v
  }
  float(name: string, dflt?: number): number {
    const v = this.values.get(name)
    if (v === undefined) {
      if (dflt === undefined) throw new OpError(`missing required attribute '${name}'`)
      return dflt
    }
    if (typeof v !== 'number') throw new OpError(`attribute '${name}' must be a number`)
    return v
  }
  ints(name: string, dflt?: number[]): number[] {
    const v = this.values.get(name)
    if (v === undefined) {
      if (dflt === undefined) throw new OpError(`missing required attribute '${name}'`)
      return dflt
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x)))
      throw new OpError(`attribute '${name}' must be a list of integers`)
    return v as number[]
  }
  floats(name: string, dflt?: number[]): number[] {
    const v = this.values.get(name)
    if (v === undefined) {
      if (dflt === undefined) throw new OpError(`missing required attribute '${name}'`)
      return dflt
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) throw new OpError(`attribute '${name}' must be a list of numbers`)
    return v as number[]
  }
  string(name: string, dflt?: string): string {
    const v = this.values.get(name)
    if (v === undefined) {
      if (dflt === undefined) throw new OpError(`missing required attribute '${name}'`)
      return dflt
    }
    if (typeof v !== 'string') throw new OpError(`attribute '${name}' must be a string`)
    return v
  }
  tensor(name: string): Tensor | undefined {
    const v = this.values.get(name)
    if (v === undefined) return undefined
    if (typeof v !== 'object' || Array.isArray(v)) throw new OpError(`attribute '${name}' must be a tensor`)
    return v as Tensor
  }
}

/** An ONNX attribute as the writer emits it; the key names the AttributeProto type. */
export type OnnxAttr = { f: number } | { i: number } | { s: string } | { t: Tensor } | { floats: number[] } | { ints: number[] }

/** Attributes by name; undefined entries are left out. */
export type OnnxAttrs = Record<string, OnnxAttr | undefined>

export interface InferContext {
  /** The value of input i when it is known at compile time (a constant or computable from constants). */
  constant(i: number): Tensor | undefined
}

/** An operand as the secret-form declarations see it: its type and whether it depends on the secret input. */
export interface Operand extends TensorType {
  readonly secret: boolean
  /** The value, when the operand is a compile-time constant. */
  readonly value?: Tensor
}

/** What an op is, as analyses and backends need to know it. */
export type OpKind =
  | 'source' //      Input, Constant, Shape: values known at compile time (never secret)
  | 'layout' //      reshapes, transposes, concat, gather, pad: moves values, no arithmetic
  | 'linear' //      affine in its secret input given constant weights (Conv, Gemm, BN, pooling by averaging)
  | 'arith' //       elementwise add/sub/mul/div/neg: polynomial of degree <= 2 in its inputs
  | 'poly' //        elementwise polynomial (Poly, Pow with an integer exponent)
  | 'nonlinear' //   anything else: ReLU, Sigmoid, MaxPool, Softmax, ...

export interface OpDef<A = any> {
  readonly doc: string
  readonly kind: OpKind
  /** Minimum and maximum number of inputs (absent optional inputs count). */
  readonly arity: readonly [number, number]
  /**
   * Oldest ONNX opset whose version of this op the entry implements exactly (default 7, where
   * ONNX's broadcasting settled); the importer refuses the op in models of older opsets.
   */
  readonly since?: number
  /** Parse and validate raw ONNX attributes into this op's attribute object. */
  attrs(raw: RawAttrs): A
  /**
   * The inverse of `attrs`: ONNX attributes that parse back to `a` at `opset` (absent: the op has
   * none). Throws OpError when the attributes have no ONNX form at that opset.
   */
  onnx?(a: A, opset: number): OnnxAttrs
  /** Result type from input types; throws OpError on a mismatch. */
  infer(ins: readonly TensorType[], a: A, cx: InferContext): TensorType
  /** Float64 reference semantics. `out` is the inferred result type. */
  eval(ins: readonly Tensor[], a: A, out: TensorType): Tensor
  /**
   * How the op acts on its secret inputs (`ins[i].secret`; constants carry their `value`): layout or
   * affine with its primitives, a polynomial, a comparison, a product of secrets, or non-polynomial
   * (the default when absent). Backends and analyses ask this instead of comparing op names; depth
   * and cost are per-backend analyses over it (see ir/linear.ts).
   */
  secret?(ins: readonly Operand[], a: A, out: TensorType): SecretForm
  /**
   * Ops with several outputs (Split, LayerNormalization): how many outputs the ONNX node has for
   * these attributes. The importer gives each output its own IR node, the op with `output: k` in its
   * attributes (read with `outputIndex`), and the writer names the node's other outputs.
   */
  outputs?(a: A): number
}

/** Which output of a several-output op a node computes (0 for single-output ops). */
export function outputIndex(a: unknown): number {
  return (a as { output?: number }).output ?? 0
}

export const DEFAULT_SINCE = 7

export function defineOp<A>(def: OpDef<A>): OpDef<A> {
  return def
}
