/**
 * Two-party inference at 32x32: the fmnist32 ResNet-20 (188,416 garbled ReLUs, about 25 million AND
 * gates per image) and its SENet variant (partial ReLUs: garbled only at the mask's ones), compiled,
 * served and queried as processes over loopback TLS: ResNet-20 with no dealer (the offline phase by
 * HE and OT between the two), the SENet variant once with and once without the dealer. Oracles:
 * PyTorch's logits (top-1 equal, error at most 1% of max(1, max |logit|)), the schedule's own byte and
 * round predictions (measured online and offline bytes equal, rounds equal; without a dealer the
 * offline prediction is `twoParty`'s), and, for the SENet variant, the dealer's run: the outputs agree
 * to 1e-3 (not bit for bit: the masks' identity positions truncate shares locally, SecureML, whose
 * one-unit error depends on the masks; 3e-5 seen). Timings are for bench/scale.
 */
import { writeFileSync } from 'node:fs'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { encodeNpy, readNpy } from '../../../compiler/npy.js'
import { background, pic, picAsync, ROOT, started } from '../../helpers.js'

const F32 = path.join(ROOT, 'test/fixtures/fmnist32')
const IMAGES = 3
const tmp = mkdtempSync(path.join(tmpdir(), 'pic-scale-'))

afterAll(() => {
  for (const c of started) if (c.exitCode === null) c.kill()
})

function argmax(v: ArrayLike<number>, o: number, n: number): number {
  let best = 0
  for (let j = 1; j < n; j++) if (v[o + j] > v[o + best]) best = j
  return best
}

describe('two-party inference of 32x32 networks over TCP', () => {
  const outputs = new Map<string, Float64Array>()
  it.each([
    ['resnet20', 'two-party'],
    ['resnet20_senet', 'two-party'],
    ['resnet20_senet', 'dealer'],
  ])('%s, offline phase %s: top-1 and logits match PyTorch, bytes and rounds match the schedule', async (name, mode) => {
    const model = path.join(F32, `${name}.onnx`)
    const sched = path.join(tmp, `${name}.json`)
    const c = pic('compile', model, '--backend', 'mpc', '-o', sched, '--json', '--quiet')
    expect(c.stderr).toBe('')
    const compiled = JSON.parse(c.stdout)
    expect(compiled.reluCount).toBe(name === 'resnet20' ? 188416 : 72498)
    const x = readNpy(path.join(F32, 'test_x.npy'))
    const per = 32 * 32
    const xs = path.join(tmp, `${name}-x.npy`)
    writeFileSync(xs, encodeNpy({ dtype: 'float32', shape: [IMAGES, 1, 32, 32], data: x.data.slice(0, IMAGES * per) }))
    const dealer = mode === 'dealer' ? await background('dealer', '--port', '0') : undefined
    const viaDealer = dealer ? ['--dealer', `127.0.0.1:${dealer.port}`] : []
    const server = await background('serve', model, '--schedule', sched, '--port', '0', ...viaDealer, '--once')
    const ys = path.join(tmp, `${name}-${mode}-y.npy`)
    const r = await picAsync('query', sched, '--connect', `127.0.0.1:${server.port}`, ...viaDealer, '--input', xs, '--output', ys, '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.perImage.bytes.online).toBe(out.predicted.bytes.online)
    expect(out.perImage.bytes.offline).toBe(out.predicted.bytes.offline)
    expect(out.perImage.rounds).toBe(out.predicted.rounds)
    expect(out.offline).toBe(mode)
    if (mode === 'two-party') expect(out.predicted.bytes.offline).toBe(compiled.twoParty.bytes.total)
    const y = readNpy(ys)
    const other = outputs.get(name)
    // the mask's identity positions truncate shares locally (SecureML): fresh masks move a logit by an ulp or so
    if (other) for (let k = 0; k < y.data.length; k++) expect(Math.abs(y.data[k] - other[k])).toBeLessThan(1e-3)
    outputs.set(name, Float64Array.from(y.data))
    const ref = readNpy(path.join(F32, `ref_${name}.npy`))
    for (let i = 0; i < IMAGES; i++) {
      expect(argmax(y.data, i * 10, 10), `image ${i}`).toBe(argmax(ref.data, i * 10, 10))
      let scale = 1
      let err = 0
      for (let j = 0; j < 10; j++) {
        scale = Math.max(scale, Math.abs(ref.data[i * 10 + j]))
        err = Math.max(err, Math.abs(y.data[i * 10 + j] - ref.data[i * 10 + j]))
      }
      expect(err / scale, `image ${i}`).toBeLessThan(0.01)
    }
    expect(await server.exit).toBe(0)
    if (dealer) {
      dealer.child.kill()
      await dealer.exit
    }
  })
})
