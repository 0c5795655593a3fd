/**
 * `pic query --labels` with both backends (accuracy.test.ts has pic run and pic eval --simulate):
 * the accuracy in --json and in the summary against the digits labels, counted here from the outputs
 * the query writes, and for mpc also from PyTorch's reference logits of the same images.
 */
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { readNpy } from '../../compiler/npy.js'
import type { Tensor } from '../../ir/tensor.js'
import { background, pic, picAsync } from '../helpers.js'
import { accuracySetup, correct, fx } from './accuracy-setup.js'

const { tmp, N, xs, ys, short, labels, plan, model } = accuracySetup('pic-accuracy-query-')

describe('pic query --labels', () => {
  it('pic query (mpc schedule): accuracy counted from the outputs; a wrong count fails before connecting', async () => {
    const m = fx('digits', 'cnn_bn_relu_maxpool.onnx')
    const sched = path.join(tmp, 'sched.json')
    expect(pic('compile', m, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
    const bad = pic('query', sched, '--connect', '127.0.0.1:1', '--dealer', '127.0.0.1:1', '--input', xs, '--labels', short)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toBe(`pic: error: ${short}: ${N - 1} labels for ${N} images\n`)
    const dealer = await background('dealer', '--port', '0')
    const server = await background('serve', m, '--schedule', sched, '--port', '0', '--dealer', `127.0.0.1:${dealer.port}`, '--dealer-fingerprint', dealer.fingerprint!, '--once')
    const out = path.join(tmp, 'mpc.npy')
    const r = await picAsync('query', sched, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!, '--dealer', `127.0.0.1:${dealer.port}`, '--dealer-fingerprint', dealer.fingerprint!, '--input', xs, '--output', out, '--labels', ys, '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const j = JSON.parse(r.stdout)
    const k = correct(readNpy(out), labels.data)
    expect([j.accuracy, j.correct, j.images]).toEqual([k / N, k, N])
    // PyTorch's logits of the same images give the same count
    expect(k).toBe(correct({ ...readNpy(fx('digits', 'ref_cnn_bn_relu_maxpool.npy')), shape: [N, 10] } as Tensor, labels.data))
    dealer.child.kill()
    await dealer.exit
  })

  it('pic query (CKKS client part): accuracy counted from the outputs, in --json and the summary', async () => {
    const server = await background('serve', model, '--plan', plan, '--port', '0', '--max-sessions', '2')
    const out = path.join(tmp, 'ckks.npy')
    const client = plan.replace(/\.json$/, '.client.json')
    const r = await picAsync('query', client, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!, '--input', xs, '--output', out, '--labels', ys, '--json', '--quiet')
    expect(r.code).toBe(0)
    const j = JSON.parse(r.stdout)
    const k = correct(readNpy(out), labels.data)
    expect([j.accuracy, j.correct, j.images]).toEqual([k / N, k, N])
    const t = await picAsync('query', client, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!, '--input', xs, '--labels', ys)
    expect(t.code).toBe(0)
    expect(t.stderr).toContain(`, accuracy ${((100 * k) / N).toFixed(2)}% (${k}/${N})\n`)
    server.child.kill()
    await server.exit
  })

})
