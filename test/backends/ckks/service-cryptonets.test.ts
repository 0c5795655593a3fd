/**
 * The CKKS service on the 28x28 CryptoNets-shaped network (digits28): `pic serve --plan` and `pic query`
 * as functions over real loopback sockets, two test images, against the float64 interpreter of the
 * compiled model. (cnn_square and aespa_cnn run in service.test.ts; fmnist32's pkn, which needs
 * client-aided refreshes, in bench/ckks-service.ts.)
 */
import { afterAll, describe, expect, it } from 'vitest'
import { compileCkks } from '../../../backends/ckks/index.js'
import { queryCkks, startCkksServer, type CkksServerHandle } from '../../../backends/ckks/service.js'
import { argmax } from '../../../passes/ola.js'
import { compiledGraph, maxAbsDiff, reference, testImages } from './helpers.js'

const servers: CkksServerHandle[] = []
afterAll(async () => {
  for (const s of servers) await s.close()
})

describe('ckks serve + query: cryptonets28', () => {
  it('top-1 equals the compiled model on 2 images, logit error at most 0.05, keys uploaded once', async () => {
    const g = compiledGraph('cryptonets28')
    const plan = compileCkks(g, { model: 'cryptonets28' })
    expect(plan.stats.bootstraps).toBe(0)
    const h = await startCkksServer(plan, { port: 0 })
    servers.push(h)
    const x = testImages('digits28', 2)
    const { output, report } = await queryCkks(h.clientPart, x, { connect: `127.0.0.1:${h.port}`, timeoutMs: 120_000 })
    const ref = reference(g, x)
    expect(output.shape).toEqual(ref.shape)
    expect(Array.from(argmax(output))).toEqual(Array.from(argmax(ref)))
    expect(maxAbsDiff(output.data, ref.data)).toBeLessThanOrEqual(0.05)
    expect(report.images).toBe(2)
    // the key upload happens once: the total upload is the keys plus the per-image bytes, not keys per image
    const up = report.bytes.total.up
    expect(up).toBeLessThan(report.bytes.keys.total + 2 * report.bytes.perImage.up + 64 * 1024)
    expect(up).toBeGreaterThanOrEqual(report.bytes.keys.total)
  }, 300_000)
})
