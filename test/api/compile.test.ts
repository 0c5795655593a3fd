/**
 * `compile(graph, backend, options)` against `pic compile`: the same summary (--json) for ir, ckks
 * and mpc under the same options, the plan the CLI writes (-o) for ckks; then the compiled CKKS plan
 * simulated without encryption and served over loopback (startCkksServer, queryCkks) against the
 * float64 interpreter on the compiled graph; and the one-line errors.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { compile, importModel, interpret, PicError, queryCkks, readNpy, simulatePlan, startCkksServer, type Tensor } from '../../index.js'
import { maxAbsDiff, pic, ROOT } from '../helpers.js'

const ex = (f: string) => path.join(ROOT, 'examples', f)
const model = () => importModel(readFileSync(ex('cnn_square.onnx')), { file: 'cnn_square.onnx' })
const calib = readNpy(ex('digits_calib.npy'))
const images = readNpy(ex('digits_x.npy'))
const out = mkdtempSync(path.join(tmpdir(), 'pic-api-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))
const json = (v: unknown) => JSON.parse(JSON.stringify(v))
const first = (t: Tensor, n: number): Tensor => ({ ...t, shape: [n, ...t.shape.slice(1)], data: t.data.slice(0, n * (t.data.length / t.shape[0])) })

describe('compile from code', () => {
  it('ir and mpc: the summary pic compile --json prints, under the same options', async () => {
    for (const [backend, flags, options] of [
      ['ir', ['--approx', 'hermite:2', '--calib', ex('digits_calib.npy')], { approx: 'hermite:2', calib }],
      ['mpc', ['--calib', ex('digits_calib.npy'), '--truncation-limit', '2^-20'], { calib, truncationLimit: 2 ** -20 }],
    ] as const) {
      const c = await compile(model(), backend, options)
      const r = pic('compile', ex('cnn_square.onnx'), '--backend', backend, '--exact', ...flags, '--json')
      expect(r.code, r.stderr).toBe(0)
      expect(json({ backend: c.backend, ...c.summary })).toEqual(JSON.parse(r.stdout))
    }
  })

  it('ckks: the plan and client part pic compile -o writes; simulated, it matches the interpreter', async () => {
    const c = await compile(model(), 'ckks', { calib })
    const file = path.join(out, 'plan.json')
    const r = pic('compile', ex('cnn_square.onnx'), '--backend', 'ckks', '--calib', ex('digits_calib.npy'), '--exact', '-o', file)
    expect(r.code, r.stderr).toBe(0)
    expect(json(c.plan)).toEqual(JSON.parse(readFileSync(file, 'utf8')))
    expect(Buffer.concat(c.sidecar as Uint8Array[]).equals(readFileSync(path.join(out, 'plan.bin')))).toBe(true)
    expect(json(c.clientPart)).toEqual(JSON.parse(readFileSync(path.join(out, 'plan.client.json'), 'utf8')))
    const plain = interpret(c.graph, [images]).get(c.graph.outputs[0])!
    const [sim] = simulatePlan(c.runnable, images)
    expect(sim.shape).toEqual([16, 10])
    expect(maxAbsDiff(sim.data, plain.data)).toBeLessThan(1e-6)
  })

  it('ckks: served and queried in this process over TLS, within CKKS noise of the interpreter', async () => {
    const c = await compile(model(), 'ckks', { calib })
    const server = await startCkksServer(c.runnable, { port: 0 })
    try {
      const x = first(images, 2)
      const { output, report } = await queryCkks(c.clientPart, x, { connect: `127.0.0.1:${server.port}`, serverTrust: { fingerprint: server.fingerprint } })
      const plain = interpret(c.graph, [x]).get(c.graph.outputs[0])!
      expect(report.images).toBe(2)
      expect(maxAbsDiff(output.data, plain.data)).toBeLessThan(0.05)
    } finally {
      await server.close()
    }
  })

  it('refuses in one line: an unknown backend, approx without calibration, batch for mpc', async () => {
    await expect(compile(model(), 'nope')).rejects.toThrow("unknown backend 'nope' (built in: ir, ckks, mpc; or a plugin module path)")
    await expect(compile(model(), 'ckks', { approx: 'hermite:2' })).rejects.toThrow(new PicError("calibration data (calib) is required with approx 'hermite:2'"))
    await expect(compile(model(), 'mpc', { batch: 4 })).rejects.toThrow('batch is for the ckks backend (packing several images into one ciphertext), not mpc')
  })
})
