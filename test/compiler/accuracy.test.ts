/**
 * Accuracy at a glance: `--labels` on pic run and pic query (CKKS and mpc), and pic eval --simulate
 * ckks|mpc. Oracles: the labels of the fixtures (test/fixtures/digits/test_y.npy, fmnist32/test_y.npy)
 * against the argmax of the outputs the commands write (counted here), PyTorch's reference logits,
 * and for --simulate ckks a real encrypted pic run on the same images (same accuracy; the simulator's
 * error against the compiled model below the encrypted run's, which carries the CKKS noise).
 */
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { readNpy } from '../../compiler/npy.js'
import { pic } from '../helpers.js'
import { accuracySetup, correct, fx } from './accuracy-setup.js'

const { tmp, N, xs, ys, short, labels, plan, model } = accuracySetup('pic-accuracy-')

describe('--labels', () => {
  let run: { accuracy: number; correct: number; images: number; maxAbsErrorVsPlain: number }
  it('pic run: accuracy, correct and images in --json and in the summary, counted from the outputs', () => {
    const out = path.join(tmp, 'run.npy')
    const r = pic('run', plan, '--input', xs, '--output', out, '--labels', ys, '--json', '--quiet')
    expect(r.code).toBe(0)
    run = JSON.parse(r.stdout)
    const k = correct(readNpy(out), labels.data)
    expect(run.correct).toBe(k)
    expect(run.images).toBe(N)
    expect(run.accuracy).toBe(k / N)
    expect(k).toBeGreaterThanOrEqual(N - 1) // cnn_square: 99.6% on the digits test set
    const t = pic('run', plan, '--input', xs, '--labels', ys)
    expect(t.code).toBe(0)
    expect(t.stderr).toContain(`, accuracy ${((100 * k) / N).toFixed(2)}% (${k}/${N})\n`)
  })

  it('pic run: a label count that does not match the images is one line', () => {
    const r = pic('run', plan, '--input', xs, '--labels', short)
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: ${short}: ${N - 1} labels for ${N} images\n`)
  })

  it('pic eval --simulate ckks agrees with the encrypted pic run of the same images, without its noise', () => {
    const r = pic('eval', model, '--data', xs, '--labels', ys, '--simulate', 'ckks', '--exact', '--json', '--quiet')
    expect(r.code).toBe(0)
    const e = JSON.parse(r.stdout)
    expect(e.simulate.backend).toBe('ckks')
    expect(e.simulate.accuracy).toBe(run.accuracy)
    expect(e.accuracy.simulated).toBe(run.accuracy)
    expect(e.simulate.correct).toBe(run.correct)
    // the encrypted run is within CKKS noise of the plaintext; the noiseless simulator far closer
    expect(run.maxAbsErrorVsPlain).toBeLessThan(0.05)
    expect(e.simulate.maxAbsErrorVsCompiled).toBeLessThan(run.maxAbsErrorVsPlain / 10)
    expect(e.simulate.agreementVsCompiled).toBe(1)
  })
})

describe('pic eval --simulate', () => {
  it('mpc on the digits test set: the labels and PyTorch give the accuracy, the float64 model the error', () => {
    const m = 'cnn_bn_relu_maxpool'
    const r = pic('eval', fx('digits', `${m}.onnx`), '--data', fx('digits', 'test_x.npy'), '--labels', fx('digits', 'test_y.npy'), '--simulate', 'mpc', '--json', '--quiet')
    expect(r.code).toBe(0)
    const e = JSON.parse(r.stdout)
    const ref = readNpy(fx('digits', `ref_${m}.npy`))
    const n = labels.data.length
    const k = correct(ref, labels.data)
    expect(e.samples).toBe(n)
    expect(e.accuracy.original).toBe(k / n)
    // the schedule's fixed point: logits within 0.05 of the float64 model, top-1 within one image
    expect(e.simulate.maxAbsErrorVsOriginal).toBeLessThan(0.05)
    expect(Math.abs(e.simulate.correct - k)).toBeLessThanOrEqual(1)
    expect(e.simulate.accuracy).toBe(e.simulate.correct / n)
    expect(e.accuracy.simulated).toBe(e.simulate.accuracy)
  })

  it('mpc on fmnist32 resnet20: accuracy against the labels as PyTorch gets it', () => {
    const r = pic('eval', fx('fmnist32', 'resnet20.onnx'), '--data', fx('fmnist32', 'test_x.npy'), '--labels', fx('fmnist32', 'test_y.npy'), '--simulate', 'mpc', '--json', '--quiet')
    expect(r.code).toBe(0)
    const e = JSON.parse(r.stdout)
    const y = readNpy(fx('fmnist32', 'test_y.npy'))
    const k = correct(readNpy(fx('fmnist32', 'ref_resnet20.npy')), y.data)
    expect(e.samples).toBe(y.data.length)
    expect(Math.abs(e.simulate.correct - k)).toBeLessThanOrEqual(1)
    expect(e.simulate.maxAbsErrorVsOriginal).toBeLessThan(0.1)
  })

  it('the text keeps eval\'s two lines and adds the simulated accuracy and error', () => {
    const r = pic('eval', model, '--data', xs, '--labels', ys, '--simulate', 'mpc', '--quiet')
    expect(r.code).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toMatch(/^accuracy: original \d+\.\d\d%, compiled \d+\.\d\d%, simulated mpc \d+\.\d\d%$/)
    expect(lines[1]).toMatch(/^agreement: \d+\.\d\d%, max abs logit error \S+, 8 samples$/)
    expect(lines[2]).toMatch(/^simulated mpc: agreement \d+\.\d\d% with the original, max abs logit error \S+ vs the original, \S+ vs the compiled model$/)
  })

  it('a backend other than ckks or mpc is a usage error', () => {
    const r = pic('eval', model, '--data', xs, '--labels', ys, '--simulate', 'ckk')
    expect(r.code).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe("pic: error: --simulate must be 'ckks' or 'mpc', got 'ckk' (did you mean 'ckks'?)")
  })
})
