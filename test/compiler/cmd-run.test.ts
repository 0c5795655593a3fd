/**
 * `pic compile --backend ckks` and `pic run`: the plan on disk, its text and --json forms, an
 * encrypted run with maxAbsErrorVsPlain, and the refusals (bootstraps without --refresh client, not a
 * CKKS plan).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { readNpy, writeNpy } from '../../compiler/npy.js'
import { argmax } from '../../passes/ola.js'
import { maxAbsDiff, pic, ROOT } from '../helpers.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-run-'))
const fx = (...p: string[]) => path.join(ROOT, 'test', 'fixtures', ...p)

describe('pic compile --backend ckks / pic run', () => {
  it('compiles, prints and runs cnn_square on encrypted data', () => {
    const plan = path.join(tmp, 'cnn_square.json')
    const c = pic('compile', fx('digits', 'cnn_square.onnx'), '--backend', 'ckks', '-o', plan, '--quiet')
    expect(c.stderr).toBe('')
    expect(c.code).toBe(0)
    const j = pic('compile', fx('digits', 'cnn_square.onnx'), '--backend', 'ckks', '--json', '--quiet')
    const s = JSON.parse(j.stdout)
    expect(s.backend).toBe('ckks')
    expect(s.params.totalBits).toBeLessThanOrEqual(218)
    expect(s.stats.depth).toBe(5)
    const t = pic('compile', fx('digits', 'cnn_square.onnx'), '--backend', 'ckks', '--quiet')
    expect(t.stdout).toMatch(/^ckks plan/)
    const x = readNpy(fx('digits', 'test_x.npy'))
    const two = path.join(tmp, 'x2.npy')
    const per = x.data.length / x.shape[0]
    writeNpy(two, { dtype: x.dtype, shape: [2, ...x.shape.slice(1)], data: x.data.slice(0, 2 * per) })
    const out = path.join(tmp, 'y.npy')
    const r = pic('run', plan, '--input', two, '--output', out, '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const res = JSON.parse(r.stdout)
    expect(res.images).toBe(2)
    expect(Object.keys(res.latencyMs)).toEqual(expect.arrayContaining(['keygen', 'encrypt', 'evaluate', 'decrypt']))
    expect(res.maxAbsErrorVsPlain).toBeLessThanOrEqual(0.05)
    expect(res.top1AgreementVsPlain).toBe(1)
    // the measured time per instruction kind covers the kinds run and most of the evaluation's time, not more
    expect(Object.keys(res.evaluateMsByOp).sort()).toEqual(Object.keys(res.counts).sort())
    const byOp = Object.values(res.evaluateMsByOp as Record<string, number>).reduce((a, b) => a + b, 0)
    const perInference = (res.latencyMs.evaluate + res.latencyMs.refresh) / 2
    expect(byOp).toBeLessThanOrEqual(perInference * 1.01 + 0.02)
    expect(byOp).toBeGreaterThan(0.5 * perInference)
    expect(Object.keys(res.estimatedMsByOp)).toEqual(expect.arrayContaining(['rotate', 'mulPlain']))
    // node-seal's heap high-water mark against the plan's predicted peak
    expect(res.memory.plaintexts).toBe('resident')
    expect(res.memory.sealHeapBytes).toBeGreaterThan(0.8 * res.memory.predictedPeakBytes)
    expect(res.memory.sealHeapBytes).toBeLessThan(1.5 * res.memory.predictedPeakBytes)
    expect(t.stdout).toMatch(/\nmemory: peak [0-9.]+ GiB of node-seal's 4 GiB heap at node '[^']+' \(\w+\): keys/)
    // the decrypted logits against PyTorch's reference logits for the same two images
    const y = readNpy(out)
    const ref = readNpy(fx('digits', 'ref_cnn_square.npy'))
    expect(y.shape).toEqual([2, 10])
    expect(maxAbsDiff(y.data, ref.data.subarray(0, 20))).toBeLessThanOrEqual(0.05)
    expect(Array.from(argmax(y))).toEqual(Array.from(argmax({ ...ref, shape: [2, 10], data: ref.data.subarray(0, 20) })))
  })

  it('writes the constants to the binary sidecar, checked by size and fingerprint', () => {
    const plan = path.join(tmp, 'side.json')
    expect(pic('compile', fx('digits', 'cnn_square.onnx'), '--backend', 'ckks', '-o', plan, '--quiet').code).toBe(0)
    const text = readFileSync(plan, 'utf8')
    const p = JSON.parse(text)
    const bin = readFileSync(plan.replace(/\.json$/, '.bin'))
    expect(bin.length).toBe(p.sidecar.graphBytes + p.sidecar.constantBytes)
    for (const c of Object.values(p.constants) as Record<string, unknown>[])
      for (const k of ['slots', 'values', 'data']) if (c[k] !== undefined) expect(c[k]).toEqual({ offset: expect.any(Number), count: expect.any(Number) })
    expect(text.length).toBeLessThan(p.sidecar.constantBytes)
    const x = fx('digits', 'test_x.npy')
    // another plan's sidecar, or a changed one, is refused before key generation
    const bad = Buffer.from(bin)
    bad[p.sidecar.graphBytes + 7] ^= 0xff
    writeFileSync(plan.replace(/\.json$/, '.bin'), bad)
    const r = pic('run', plan, '--input', x, '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: ${plan.replace(/\.json$/, '.bin')}: the sidecar does not match the plan (fingerprint of its constants)\n`)
    writeFileSync(plan.replace(/\.json$/, '.bin'), bin.subarray(0, bin.length - 8))
    expect(pic('run', plan, '--input', x, '--quiet').stderr).toMatch(/the sidecar holds \d+ bytes, the plan refers to \d+\n$/)
  })

  it('refuses at compile time a plan that cannot fit node-seal\'s heap, in one line naming the layer', () => {
    const model = fx('digits', 'cnn_square.onnx')
    process.env.PIC_CKKS_HEAP = '64MiB'
    let c: ReturnType<typeof pic>
    try {
      c = pic('compile', model, '--backend', 'ckks', '-o', path.join(tmp, 'tiny.json'), '--quiet')
    } finally {
      delete process.env.PIC_CKKS_HEAP
    }
    expect(c.code).toBe(1)
    expect(c.stdout).toBe('')
    expect(c.stderr).toBe(
      `pic: error: ${model}: node '/fc/Gemm' (Gemm): the CKKS plan needs 0.12 GiB at this layer, more than the 0.059 GiB a plan may use of node-seal's 0.063 GiB heap (keys 0.067 GiB, ciphertexts 0.015 GiB, plaintexts 0.00037 GiB, context and working memory 0.042 GiB)\n`,
    )
  })

  it('refuses a plan that needs bootstraps unless --refresh client', () => {
    const plan = path.join(tmp, 'boot.json')
    const c = pic('compile', fx('digits', 'cnn_square.onnx'), '--backend', 'ckks', '--security', '192', '-o', plan, '--quiet')
    expect(c.code).toBe(0)
    const p = JSON.parse(readFileSync(plan, 'utf8'))
    p.stats.bootstraps = 1
    writeFileSync(plan, JSON.stringify(p))
    const r = pic('run', plan, '--input', fx('digits', 'test_x.npy'), '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^pic: error: .*boot\.json: plan needs 1 bootstrap\(s\) .*run with --refresh client/)
  })

  it('refuses files that are not CKKS plans', () => {
    const f = path.join(tmp, 'other.json')
    writeFileSync(f, JSON.stringify({ format: 'pic-ir' }))
    const r = pic('run', f, '--input', fx('digits', 'test_x.npy'), '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: ${f}: not a CKKS plan (format 'pic-ir'); pic run executes plans from pic compile --backend ckks\n`)
  })
})
