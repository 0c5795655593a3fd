/**
 * Progress on stderr for the long steps (issue 13 item 5): key generation and per image (pic run),
 * calibration and OLA per layer in words, CKKS lowering stages, and eval --simulate per image
 * (progress-serve.test.ts has pic serve and pic query). Each command: the lines appear on stderr,
 * none with --quiet, and with --json stdout is exactly one JSON object. Per-image lines come at most
 * once a second, the first after two seconds and none for the last image, so the runs here take a
 * few seconds: 12 CKKS images, the 497 digits test images simulated.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeNpy, readNpy } from '../../compiler/npy.js'
import { pic, ROOT, started } from '../helpers.js'
import { lineOf, pureJSON } from './progress-util.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-progress-'))
const fx = (...p: string[]) => path.join(ROOT, 'test', 'fixtures', ...p)
const xs = path.join(tmp, 'x.npy')
const plan = path.join(tmp, 'cnn.json')
const model = fx('digits', 'cnn_square.onnx')

beforeAll(() => {
  const x = readNpy(fx('digits', 'test_x.npy'))
  writeFileSync(xs, encodeNpy({ dtype: x.dtype, shape: [12, 1, 8, 8], data: x.data.slice(0, 12 * 64) }))
  expect(pic('compile', model, '--backend', 'ckks', '-o', plan, '--quiet').code).toBe(0)
})
afterAll(() => {
  for (const c of started) c.kill()
})

describe('progress on stderr', () => {
  it('pic compile: calibration, OLA per layer in words and the CKKS lowering stages', () => {
    const args = ['compile', fx('digits', 'mlp_sigmoid_tanh.onnx'), '--backend', 'ckks', '--approx', 'ola', '--calib', fx('digits', 'calib_x.npy'), '--json']
    const r = pic(...args)
    expect(r.code).toBe(0)
    pureJSON(r.stdout)
    lineOf(r.stderr, /^pic: calibrate: 300\/300 samples$/)
    lineOf(r.stderr, /^pic: ola: layer 1 of 2 \(\/act1\/Sigmoid_output_0, 32 elements\): lowest degree within the budget \d+ \(loss \d+\.\d\d of 3\.00 samples allowed\); degrees tried [\d,]+; \d+\.\d s so far, est\. \d+\.\d s for the 1 layer\(s\) left$/)
    lineOf(r.stderr, /^pic: ola: layer 2 of 2 \(\/act2\/Tanh_output_0, 32 elements\): /)
    const lower = lineOf(r.stderr, /^pic: ckks: lowering at N = \d+$/)
    expect(lineOf(r.stderr, /^pic: ckks: finishing the plan at N = \d+, \d+ primes: /)).toBeGreaterThan(lower)
    lineOf(r.stderr, /^pic: ckks: plan validated, \d+ instructions, \d+ rotation key\(s\)/)
    const q = pic(...args, '--quiet')
    expect(q.code).toBe(0)
    expect(q.stderr).toBe('')
    pureJSON(q.stdout)
  })

  it('pic run: key generation before the keys, then image i/n', () => {
    const r = pic('run', plan, '--input', xs, '--json')
    expect(r.code).toBe(0)
    pureJSON(r.stdout)
    const gen = lineOf(r.stderr, /^pic: generating keys: \d+ rotation key\(s\) \+ relinearization at logN \d+ \(\d+ primes\)\.\.\.$/)
    expect(lineOf(r.stderr, /^pic: keys: /)).toBeGreaterThan(gen)
    expect(lineOf(r.stderr, /^pic: image \d+\/12 \(evaluate \d+ ms\)$/)).toBeGreaterThan(gen)
    const q = pic('run', plan, '--input', xs, '--json', '--quiet')
    expect(q.code).toBe(0)
    expect(q.stderr).toBe('')
    pureJSON(q.stdout)
  })

  it('pic eval --simulate: what it simulates, then image i/n', () => {
    const args = ['eval', model, '--data', fx('digits', 'test_x.npy'), '--labels', fx('digits', 'test_y.npy'), '--simulate', 'ckks', '--json']
    const r = pic(...args)
    expect(r.code).toBe(0)
    pureJSON(r.stdout)
    const what = lineOf(r.stderr, /^pic: simulate ckks: the plan's slot arithmetic without encryption \(N = \d+, \d+ instructions\) on 497 image\(s\)$/)
    expect(lineOf(r.stderr, /^pic: simulate ckks: image \d+\/497$/)).toBeGreaterThan(what)
    const q = pic(...args, '--quiet')
    expect(q.code).toBe(0)
    expect(q.stderr).toBe('')
    pureJSON(q.stdout)
  })
})
