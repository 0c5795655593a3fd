/** `pic export`: the compiled model as standard ONNX that re-imports to the same outputs; --trace. */
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { ckksBackend } from '../../backends/ckks/index.js'
import { compileFor, parse } from '../../compiler/cli-kit.js'
import { exportCommand } from '../../compiler/cmd-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { onnx } from '../../compiler/onnx-tensor.js'
import { PIC_ONLY_OPS } from '../../ir/ops/index.js'
import { digits } from '../helpers.js'
import { expectSame, fixture, ops, testX } from '../passes/util.js'

const dir = mkdtempSync(path.join(tmpdir(), 'pic-export-'))

async function exportModel(name: string, ...extra: string[]): Promise<string> {
  const out = path.join(dir, `${name}.onnx`)
  await exportCommand.run(parse(exportCommand, [digits(`${name}.onnx`), '-o', out, '--quiet', ...extra]))
  return out
}

describe('pic export', () => {
  it.each(['aespa_cnn', 'senet_partial_relu', 'cnn_gelu'])('%s: standard ONNX ops only, same outputs after re-import', async (name) => {
    const out = await exportModel(name)
    const bytes = readFileSync(out)
    const model = onnx.ModelProto.decode(bytes)
    const types = new Set(model.graph!.node!.map((n) => n.opType!))
    expect([...types].filter((t) => PIC_ONLY_OPS.has(t))).toEqual([])
    expect(model.graph!.input!.map((i) => i.type!.tensorType!.shape!.dim![0].dimParam)).toEqual(['N'])
    const back = importModel(bytes, { file: out })
    expectSame(fixture(name), back, [testX(64)], 1e-5)
  })

  it('writes AESPA per-channel coefficients as [1, C, 1, 1] initializers and no BatchNormalization', async () => {
    const model = onnx.ModelProto.decode(readFileSync(await exportModel('aespa_cnn')))
    expect(model.graph!.node!.some((n) => n.opType === 'BatchNormalization')).toBe(false)
    const dims = model.graph!.initializer!.map((t) => (t.dims ?? []).map(Number))
    expect(dims).toContainEqual([1, 8, 1, 1])
    expect(dims).toContainEqual([1, 16, 1, 1])
  })

  it.each(['senet_partial_relu', 'cnn_bn_relu_maxpool', 'cnn_gelu'])('%s --approx hermite:2: re-imports to the CKKS-compiled outputs', async (name) => {
    const args = ['--approx', 'hermite:2', '--calib', digits('calib_x.npy')]
    const back = importModel(readFileSync(await exportModel(name, ...args)))
    const { compiled } = compileFor(fixture(name), ckksBackend, parse(exportCommand, args))
    expectSame(compiled, back, [testX(64)], 1e-4)
  })

  it('fails with one-line messages on a missing MODEL or -o', async () => {
    await expect(async () => exportCommand.run(parse(exportCommand, ['-o', 'x.onnx']))).rejects.toThrow(/^missing MODEL$/)
    await expect(async () => exportCommand.run(parse(exportCommand, [digits('cnn_square.onnx')]))).rejects.toThrow(/^--output is required$/)
  })

  it('--trace prints the IR after every pass on stderr', async () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      await exportModel('cnn_square', '--trace')
      const text = spy.mock.calls.map((c) => String(c[0])).join('')
      expect(text).toContain('--- after fold-polynomials\n')
      expect(text).toContain('--- after lower-for-export\n')
      expect(text).toMatch(/= Poly\(/)
    } finally {
      spy.mockRestore()
    }
    expect(ops(importModel(readFileSync(path.join(dir, 'cnn_square.onnx')))).Mul).toBe(2)
  })
})
