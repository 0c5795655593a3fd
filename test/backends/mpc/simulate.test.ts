/**
 * The schedule's arithmetic in the clear (backends/mpc/simulate.ts) against the real two-party run on
 * loopback, on the same images. Where every truncation happens inside a garbled circuit (ReLU and max
 * pooling only: cnn_bn_relu_maxpool) the outputs are equal bit for bit. Where shares are truncated
 * locally (partial-ReLU identities, Beaver squares, polynomials) each truncation reconstructs to the
 * floor the simulation takes or one unit (2^-fracBits) above it, and the later layers carry those units
 * into the logits: measured (one run, N = 5 images) from 2^-9.7 to 2^-8.1 there, so the bound is 2^-6,
 * with the same top-1. Both stay within 0.05 of the float64 interpreter of the compiled graph.
 * Models cover garbled ReLUs, max pooling, partial ReLUs, Beaver squares and an approximated
 * (Chebyshev, degree 6) activation.
 */
import { describe, expect, it } from 'vitest'
import { lowerMpc, mpcBackend, runQuery } from '../../../backends/mpc/index.js'
import { simulateSchedule } from '../../../backends/mpc/simulate.js'
import { readNpy } from '../../../compiler/npy.js'
import { interpret } from '../../../ir/interpret.js'
import { passContext, runPipeline } from '../../../passes/pass.js'
import { argmax, compiled, DIGITS, images, loadModel, parties } from './helpers.js'

const N = 5

function approximated(name: string) {
  const calib = readNpy(`${DIGITS}/calib_x.npy`)
  return { g: runPipeline(loadModel(name), mpcBackend.pipeline({ approx: 'chebyshev:6' }), passContext({ approx: 'chebyshev:6' }, { calib })), calib }
}

describe('mpc schedule simulation', () => {
  const cases: [string, number, () => { g: ReturnType<typeof compiled>; calib?: ReturnType<typeof readNpy> }][] = [
    ['cnn_bn_relu_maxpool', 0, () => ({ g: compiled('cnn_bn_relu_maxpool') })],
    ['senet_partial_relu', 2 ** -6, () => ({ g: compiled('senet_partial_relu') })],
    ['cnn_square', 2 ** -6, () => ({ g: compiled('cnn_square') })],
    ['mlp_sigmoid_tanh (chebyshev:6)', 2 ** -6, () => approximated('mlp_sigmoid_tanh')],
  ]
  for (const [mi, [name, bound, make]] of cases.entries())
    it(`${name}: equals the two-party run ${bound === 0 ? 'bit for bit' : 'within the carried truncation units'}`, async () => {
      const { g, calib } = make()
      const s = lowerMpc(g, { calib })
      const { x } = images(N, 11 * mi)
      const sim = simulateSchedule(g, s, x)
      const p = await parties(g, s)
      try {
        const { output } = await runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
        expect(sim.shape).toEqual(output.shape)
        let worst = 0
        for (let i = 0; i < sim.data.length; i++) worst = Math.max(worst, Math.abs(sim.data[i] - output.data[i]))
        console.log(`${name}: largest |simulated - two-party| ${worst} (2^${worst > 0 ? Math.log2(worst).toFixed(1) : '-inf'})`)
        if (bound === 0) expect(Array.from(sim.data)).toEqual(Array.from(output.data))
        else expect(worst).toBeLessThan(bound)
        for (let i = 0; i < N; i++) expect(argmax(sim.data, i * 10, 10)).toBe(argmax(output.data, i * 10, 10))
        const plain = interpret(g, [x]).get(g.outputs[0])!
        for (let i = 0; i < sim.data.length; i++) expect(Math.abs(sim.data[i] - plain.data[i])).toBeLessThan(0.05)
      } finally {
        await p.close()
      }
    })
})
