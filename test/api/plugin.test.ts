/**
 * examples/plugin-backend.js loaded as `pic compile MODEL --backend ./examples/plugin-backend.js`
 * and through `compile(graph, PATH)`; its counts checked against ones computed here from the
 * imported ONNX graph alone (no pass, no declared form): a Conv's output elements times its weight's
 * C/group kh kw, a Gemm's outputs times its weight's inner dimension, one comparison per ReLU output,
 * kh kw - 1 per MaxPool output, and the depth of two chained squarings (the manifest's x*x pattern).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { compile, importModel, type Graph } from '../../index.js'
import { digits, MANIFEST, pic, ROOT } from '../helpers.js'

const PLUGIN = './examples/plugin-backend.js'
const load = (model: string) => importModel(readFileSync(digits(`${model}.onnx`)), { file: `${model}.onnx` })
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1)
const broken = path.join(ROOT, 'test', 'api', `.broken-plugin-${process.pid}.mjs`)
afterAll(() => rmSync(broken, { force: true }))

/** Multiply-adds of the model's Conv and Gemm nodes, and its comparisons, from the ONNX graph. */
function independent(g: Graph) {
  const shape = (name: string) => g.nodes.find((n) => n.name === name)!.type.shape
  let conv = 0
  let gemm = 0
  let comparisons = 0
  for (const n of g.nodes) {
    if (n.op === 'Conv') conv += size(n.type.shape) * size(shape(n.inputs[1]).slice(1))
    if (n.op === 'Gemm') gemm += size(n.type.shape) * shape(n.inputs[1])[(n.attrs as { transB?: number }).transB ? 1 : 0]
    if (n.op === 'Relu') comparisons += size(n.type.shape)
    if (n.op === 'MaxPool') comparisons += size(n.type.shape) * (size((n.attrs as { kernel: number[] }).kernel) - 1)
  }
  return { conv, gemm, comparisons }
}

interface Report {
  backend: string
  depth: number
  macs: number
  comparisons: number
  layers: { op: string; form: string; macs: number; degree?: number; depth: number }[]
}
const sumOf = (r: Report, op: string) => r.layers.filter((l) => l.op === op).reduce((a, l) => a + l.macs, 0)

describe('the example plugin backend', () => {
  it('cnn_square through the CLI: Conv and Gemm multiply-adds, two squarings, depth 2', () => {
    const r = pic('compile', digits('cnn_square.onnx'), '--backend', PLUGIN, '--json')
    expect(r.code, r.stderr).toBe(0)
    const rep = JSON.parse(r.stdout) as Report
    const want = independent(load('cnn_square'))
    expect(rep.backend).toBe('cost-report')
    expect(sumOf(rep, 'Conv')).toBe(want.conv)
    expect(sumOf(rep, 'Gemm')).toBe(want.gemm)
    const squares = Object.keys((MANIFEST.models.cnn_square as unknown as { activation_onnx_patterns: Record<string, unknown> }).activation_onnx_patterns)
    const polys = rep.layers.filter((l) => l.form === 'poly')
    expect(polys.length).toBe(squares.length)
    expect(polys.map((l) => l.degree)).toEqual(squares.map(() => 2))
    expect(rep.depth).toBe(squares.length) // each squaring of a secret is one product on the path
    expect(rep.comparisons).toBe(0)
  })

  it('cnn_bn_relu_maxpool through the API: the same report as the CLI, comparisons by ReLU and MaxPool', async () => {
    const g = load('cnn_bn_relu_maxpool')
    const c = await compile(g, PLUGIN)
    const cli = pic('compile', digits('cnn_bn_relu_maxpool.onnx'), '--backend', PLUGIN, '--json')
    expect(cli.code, cli.stderr).toBe(0)
    expect({ backend: c.backend, ...c.summary }).toEqual(JSON.parse(cli.stdout))
    const want = independent(g)
    const rep = c.summary as unknown as Report
    expect(rep.comparisons).toBe(want.comparisons)
    expect(sumOf(rep, 'Conv')).toBe(want.conv)
    expect(rep.depth).toBe(0)
    expect(c.print().split('\n')[0]).toBe(`torch_jit: depth 0, ${rep.macs} multiply-adds, ${want.comparisons} comparisons`)
  })

  it('a module that is not a Backend is refused in one line', () => {
    writeFileSync(broken, 'export default { name: "half", pipeline: () => [] }\n')
    const r = pic('compile', digits('cnn_square.onnx'), '--backend', broken)
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: backend plugin '${broken}' does not export a Backend (name, pipeline, lower, print, summary) as default or 'backend'\n`)
  })
})
