import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { readNpy } from '../../compiler/npy.js'
import { importModel } from '../../compiler/onnx-import.js'
import { readTensorPb } from '../../compiler/onnx-tensor.js'
import { interpret } from '../../ir/interpret.js'
import { graphFromJSON } from '../../ir/serialize.js'
import { digits, MANIFEST, maxAbsDiff, MODELS, pic } from '../helpers.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-cli-'))

describe('pic eval', () => {
  it.each(MODELS)('%s reproduces the manifest accuracy exactly', (m) => {
    const r = pic('eval', digits(`${m}.onnx`), '--data', digits('test_x.npy'), '--labels', digits('test_y.npy'), '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.samples).toBe(497)
    expect(out.accuracy.original).toBe(MANIFEST.models[m].test_accuracy)
    expect(out.accuracy.compiled).toBe(out.accuracy.original)
    expect(out.agreement).toBe(1)
  })
})

describe('pic infer', () => {
  it.each(['mlp_relu', 'resnet8', 'cnn_gelu'])('%s writes PyTorch reference logits (max abs error <= 1e-4)', (m) => {
    const out = path.join(tmp, `${m}.npy`)
    const r = pic('infer', digits(`${m}.onnx`), '--input', digits('test_x.npy'), '--output', out, '--quiet')
    expect(r.code).toBe(0)
    const y = readNpy(out)
    const ref = readNpy(digits(`ref_${m}.npy`))
    expect(y.shape).toEqual([497, 10])
    expect(maxAbsDiff(y.data, ref.data)).toBeLessThanOrEqual(1e-4)
  })

  it('writes every output by name with --output-dir and takes NAME=FILE', () => {
    const dir = path.join(tmp, 'outs')
    const r = pic('infer', digits('mlp_relu.onnx'), '--input', `input=${digits('test_x.npy')}`, '--output-dir', dir, '--quiet')
    expect(r.code).toBe(0)
    expect(readNpy(path.join(dir, 'logits.npy')).shape).toEqual([497, 10])
  })

  const node = (c: string, f: string) => path.join(import.meta.dirname, '..', 'fixtures', 'onnx-node', c, f)
  it.each(['test_transpose_default', 'test_flatten_axis2', 'test_constant'])('%s: static shapes kept, no batch split; ONNX outputs to 1e-6 (no inputs: none given)', (c) => {
    const out = path.join(tmp, `${c}.npy`)
    const inputs = c === 'test_constant' ? [] : ['--input', node(c, 'test_data_set_0/input_0.pb')]
    const r = pic('infer', node(c, 'model.onnx'), ...inputs, '--output', out, '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const y = readNpy(out)
    const want = readTensorPb(readFileSync(node(c, 'test_data_set_0/output_0.pb')))
    expect(y.shape).toEqual(want.shape)
    expect(y.dtype).toBe(want.dtype)
    expect(maxAbsDiff(y.data, want.data)).toBeLessThanOrEqual(1e-6)
  })

  it('binds a shape operand fed as an input (Reshape shape) from the file given, for infer and with --bind for compile', () => {
    const c = 'test_reshape_negative_dim'
    const out = path.join(tmp, `${c}.npy`)
    const r = pic('infer', node(c, 'model.onnx'), '--input', node(c, 'test_data_set_0/input_0.pb'), '--input', node(c, 'test_data_set_0/input_1.pb'), '--output', out)
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/bound input 'shape' as constant: the graph is specialised on its value/)
    const want = readTensorPb(readFileSync(node(c, 'test_data_set_0/output_0.pb')))
    const y = readNpy(out)
    expect(y.shape).toEqual(want.shape)
    expect(maxAbsDiff(y.data, want.data)).toBe(0)
    const refused = pic('compile', node(c, 'model.onnx'), '--backend', 'ir', '--json', '--quiet')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/Reshape shape must be a compile-time constant/)
    const bound = pic('compile', node(c, 'model.onnx'), '--backend', 'ir', '--bind', `shape=${node(c, 'test_data_set_0/input_1.pb')}`, '--json', '--quiet')
    expect(bound.code).toBe(0)
    expect(pic('compile', node(c, 'model.onnx'), '--backend', 'ir', '--bind', `nope=${node(c, 'test_data_set_0/input_1.pb')}`).stderr).toMatch(/--bind nope: the model has no input 'nope'/)
  })

  it('asks for the inputs a model takes', () => {
    const r = pic('infer', digits('mlp_relu.onnx'), '--output', path.join(tmp, 'none.npy'))
    expect(r.code).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe('pic: error: the model takes 1 input: give it with --input')
  })

  it('refuses a missing output option with a usage error', () => {
    const r = pic('infer', digits('mlp_relu.onnx'), '--input', digits('test_x.npy'))
    expect(r.code).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe('pic: error: give exactly one of --output and --output-dir')
  })
})

describe('pic inspect', () => {
  it('reports inputs, outputs, ops and the ReLU count of cnn_bn_relu_maxpool', () => {
    const r = pic('inspect', digits('cnn_bn_relu_maxpool.onnx'), '--json')
    expect(r.code).toBe(0)
    const info = JSON.parse(r.stdout)
    expect(info.inputs).toEqual([{ name: 'input', dtype: 'float32', shape: ['N', 1, 8, 8] }])
    expect(info.outputs).toEqual([{ name: 'logits', dtype: 'float32', shape: ['N', 10] }])
    expect(info.ops).toEqual(MANIFEST.models.cnn_bn_relu_maxpool.op_type_counts)
    expect(info.parameters).toBe(MANIFEST.models.cnn_bn_relu_maxpool.parameter_count)
    // Conv 1->8 on 8x8 then ReLU: 8*8*8; after MaxPool 2, conv 8->16 on 4x4 then ReLU: 16*4*4.
    expect(info.reluCount).toBe(8 * 8 * 8 + 16 * 4 * 4)
    expect(info.activations.MaxPool).toBe(8 * 4 * 4)
  })

  it.each(MODELS)('%s: op counts match the manifest', (m) => {
    const info = JSON.parse(pic('inspect', digits(`${m}.onnx`), '--json').stdout)
    expect(info.ops).toEqual(MANIFEST.models[m].op_type_counts)
  })
})

describe('pic compile --backend ir', () => {
  it('prints backend, ops and nodes as JSON and writes identical bytes twice', () => {
    const r = pic('compile', digits('resnet8.onnx'), '--backend', 'ir', '--json', '--quiet')
    expect(r.code).toBe(0)
    const s = JSON.parse(r.stdout)
    expect(s.backend).toBe('ir')
    expect(s.ops.Conv).toBe(9)
    expect(typeof s.nodes).toBe('number')
    const a = path.join(tmp, 'a.json')
    const b = path.join(tmp, 'b.json')
    expect(pic('compile', digits('resnet8.onnx'), '--backend', 'ir', '-o', a, '--quiet').code).toBe(0)
    expect(pic('compile', digits('resnet8.onnx'), '--backend', 'ir', '-o', b, '--quiet').code).toBe(0)
    expect(readFileSync(a)).toEqual(readFileSync(b))
    expect(readFileSync(a.replace('.json', '.bin'))).toEqual(readFileSync(b.replace('.json', '.bin')))
    const back = graphFromJSON(JSON.parse(readFileSync(a, 'utf8')), readFileSync(a.replace('.json', '.bin')))
    const x = readNpy(digits('test_x.npy'))
    const batch = { ...x, shape: [16, 1, 8, 8], data: x.data.slice(0, 16 * 64) }
    const want = interpret(importModel(readFileSync(digits('resnet8.onnx')), { file: 'resnet8' }), [batch]).get('logits')!
    expect(maxAbsDiff(interpret(back, [batch]).get('logits')!.data, want.data)).toBeLessThan(1e-9)
  })

  it('refuses an unknown backend in one line', () => {
    const r = pic('compile', digits('resnet8.onnx'), '--backend', 'tpu')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^pic: error: unknown backend 'tpu' \(built in: ir[^)]*; or a plugin module path\)\nusage: pic compile /)
  })
})

describe('--backend mpc keeps ReLUs for garbled circuits unless --approx-relu', () => {
  const run = (...extra: string[]) =>
    JSON.parse(pic('compile', digits('cnn_bn_relu_maxpool.onnx'), '--backend', 'mpc', '--approx', 'hermite:2', '--calib', digits('calib_x.npy'), '--json', '--quiet', ...extra).stdout)
  it('counts every ReLU by default and none with --approx-relu', () => {
    expect(run().reluCount).toBe(8 * 8 * 8 + 16 * 4 * 4)
    expect(run('--approx-relu').reluCount).toBe(0)
  })
})
