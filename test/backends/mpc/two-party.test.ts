/**
 * Two-party runs over real TCP on loopback: outputs agree with PyTorch's reference logits (top-1 and
 * within 0.05), measured online bytes and rounds match the schedule's prediction.
 */
import { describe, expect, it } from 'vitest'
import { lowerMpc, runQuery } from '../../../backends/mpc/index.js'
import { argmax, compiled, images, parties } from './helpers.js'

const MODELS = ['cnn_bn_relu_maxpool', 'senet_partial_relu', 'cnn_square']
const N = 6

describe('two-party inference on loopback', () => {
  for (const [mi, m] of MODELS.entries())
    it(`${m}: top-1 and logits match the reference, bytes and rounds match the model`, async () => {
      const g = compiled(m)
      const s = lowerMpc(g)
      const p = await parties(g, s)
      try {
        const { x, ref } = images(N, 17 * mi)
        const { output, report } = await runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
        const r = ref(m)
        expect(output.shape).toEqual([N, 10])
        for (let i = 0; i < N; i++) {
          const ri = 17 * mi + i
          expect(argmax(output.data, i * 10, 10)).toBe(argmax(r.data, ri * 10, 10))
          for (let j = 0; j < 10; j++) expect(Math.abs(output.data[i * 10 + j] - r.data[ri * 10 + j])).toBeLessThan(0.05)
        }
        expect(report.images).toBe(N)
        expect(report.perImage.bytes.online).toBe(s.bytes.online)
        expect(report.perImage.bytes.offline).toBe(s.bytes.offline)
        expect(report.perImage.rounds).toBe(s.rounds)
        expect(report.rounds).toBe(N * s.rounds)
        expect(await Promise.all(p.server.sessions)).toEqual([undefined])
      } finally {
        await p.close()
      }
    })
})
