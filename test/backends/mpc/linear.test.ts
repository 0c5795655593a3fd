/**
 * Ring operators: a quantized segment applied to random 64-bit shares by limb convolutions equals
 * the same integer map computed with BigInt (its dense matrix, composed by the transposed chain) mod
 * 2^64; on fixed-point encodings it equals the interpreter's value of the segment to the fixed-point
 * error; the wire form round-trips, and every kind of malformed operator a hostile server could send
 * the dealer is a ProtocolError.
 */
import { describe, expect, it } from 'vitest'
import { instantiate } from '../../../ir/builder.js'
import { applyChainT } from '../../../ir/linear.js'
import { interpret } from '../../../ir/interpret.js'
import { applyRing, operatorsFromBytes, operatorsToBytes, quantize, type RingOperator } from '../../../backends/mpc/linear.js'
import { ProtocolError } from '../../../backends/mpc/net.js'
import { decodeArray, encodeArray, freshSeed, Prg } from '../../../backends/mpc/ring.js'
import { analyze, segmentAffine } from '../../../backends/mpc/analyze.js'
import { segmentsOf } from '../../../backends/mpc/steps/linear.js'
import { lowerMpc } from '../../../backends/mpc/schedule.js'
import { common } from '../../../passes/pipelines.js'
import { apply, fixture, testX } from '../../passes/util.js'

/** Row r of the integer matrix of one term, by the transposed chain (exact: small integer weights). */
function bigintApply(op: RingOperator, x: (id: number) => BigUint64Array): BigUint64Array {
  const y = new BigUint64Array(op.size)
  for (const t of op.terms) {
    const src = x(t.source)
    for (let r = 0; r < op.size; r++) {
      const e = new Float64Array(op.size)
      e[r] = 1
      const row = applyChainT(t.prims, e, 1)
      let acc = 0n
      for (let j = 0; j < row.length; j++) if (row[j] !== 0) acc += BigInt(row[j]) * src[j]
      y[r] = BigInt.asUintN(64, y[r] + acc)
    }
  }
  return y
}

function model(name: string) {
  const g = instantiate(apply(fixture(name), ...common), { N: 1 })
  const an = analyze(g)
  const s = lowerMpc(g)
  const ops = segmentsOf(s).map((seg) => quantize(segmentAffine(an, seg), s.params.fracBits, s.params.weightFracBits, seg.node))
  return { g, an, s, ops }
}

describe('ring operators', () => {
  it('limb convolutions equal the BigInt integer map mod 2^64 on random shares (cnn_bn_relu_maxpool, aespa_cnn)', () => {
    for (const name of ['cnn_bn_relu_maxpool', 'aespa_cnn']) {
      const { s, ops } = model(name)
      const prg = new Prg(freshSeed(), 'test')
      const shares = s.sources.map((src) => prg.ring(src.size))
      for (const op of ops.slice(0, 3)) {
        const got = applyRing(op, (id) => shares[id], false)
        expect(got).toEqual(bigintApply(op, (id) => shares[id]))
      }
    }
  })

  it('on fixed-point inputs the first segment equals the interpreter within the fixed-point error', () => {
    const { g, s, ops } = model('resnet8')
    const x = testX(1)
    const env = interpret(g, [x], { keepAll: true })
    const seg = segmentsOf(s)[0]
    const want = env.get(seg.node)!.data
    const fx = encodeArray(x.data, s.params.fracBits)
    const y = decodeArray(applyRing(ops[0], () => fx, true), s.params.fracBits + s.params.weightFracBits)
    let err = 0
    y.forEach((v, i) => (err = Math.max(err, Math.abs(v - want[i]))))
    expect(err).toBeLessThan(0.01)
    expect(err).toBeGreaterThan(0) // quantized, not the float map
  })

  it('the wire form round-trips; malformed operators are protocol errors', () => {
    const { s, ops } = model('cnn_bn_relu_maxpool')
    const segs = segmentsOf(s).map((seg) => ({ size: seg.size, sources: seg.sources }))
    const size = (id: number) => s.sources[id].size
    const buf = operatorsToBytes(ops)
    const back = operatorsFromBytes(buf, segs, size)
    const prg = new Prg(freshSeed(), 'wire')
    const shares = s.sources.map((src) => prg.ring(src.size))
    back.forEach((op, j) => expect(applyRing(op, (id) => shares[id], true)).toEqual(applyRing(ops[j], (id) => shares[id], true)))

    const header = JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0)).toString())
    const withHeader = (h: unknown, tail = buf.subarray(4 + buf.readUInt32LE(0))) => {
      const j = Buffer.from(JSON.stringify(h))
      const len = Buffer.alloc(4)
      len.writeUInt32LE(j.length)
      return Buffer.concat([len, j, tail])
    }
    const mutate = (f: (h: any) => void) => {
      const h = structuredClone(header)
      f(h)
      return withHeader(h)
    }
    const convTerm = header.findIndex((h: any) => h.terms.some((t: any) => t.prims.some((p: any) => p.kind === 'conv')))
    const cases: [string, Buffer][] = [
      ['truncated', buf.subarray(0, buf.length - 8)],
      ['trailing', Buffer.concat([buf, Buffer.alloc(8)])],
      ['not JSON', Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from('{{{')])],
      ['wrong count', withHeader(header.slice(1))],
      ['limbs out of range', mutate((h) => (h[convTerm].limbBits = 33))],
      ['huge shape', mutate((h) => (h[convTerm].terms[0].prims[0].out = [1 << 20, 1 << 20]))],
      ['bad geometry', mutate((h) => (h[convTerm].terms[0].prims.find((p: any) => p.kind === 'conv').geom.oh += 1))],
      ['foreign source', mutate((h) => (h[convTerm].terms[0].source = 999))],
    ]
    for (const [what, b] of cases) expect(() => operatorsFromBytes(b, segs, size), what).toThrow(ProtocolError)
    // a weight that is not an integer, and a conv weight that breaks the limb bound
    const op0 = ops[convTerm]
    const conv = op0.terms[0].prims.find((p) => p.kind === 'conv')!
    if (conv.kind !== 'conv') throw new Error('no conv')
    const frac: RingOperator = { ...op0, terms: [{ ...op0.terms[0], prims: op0.terms[0].prims.map((p) => (p === conv ? { ...conv, weight: conv.weight.map((w) => w + 0.5) } : p)) }, ...op0.terms.slice(1)] }
    const big: RingOperator = { ...op0, terms: [{ ...op0.terms[0], prims: op0.terms[0].prims.map((p) => (p === conv ? { ...conv, weight: conv.weight.map(() => 2 ** 39) } : p)) }, ...op0.terms.slice(1)] }
    for (const bad of [frac, big]) expect(() => operatorsFromBytes(operatorsToBytes(ops.map((o, j) => (j === convTerm ? bad : o))), segs, size)).toThrow(ProtocolError)
  })
})
