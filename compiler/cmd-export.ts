/**
 * `pic export MODEL --approx SPEC --calib C.npy -o OUT.onnx`: the compiled (approximated) model
 * written back as standard ONNX. The CKKS pipeline runs (the MPC one with --keep-relu), PIC-only ops
 * are lowered to Mul/Add/Relu/... with coefficients and masks as initializers, and the result is
 * checked by importing it again before it is written.
 */
import { opCounts } from '../ir/stats.js'
import { ckksBackend } from '../backends/ckks/index.js'
import { lowerForExport } from '../passes/lower-for-export.js'
import { APPROX_OPTIONS, compileFor, flag, logger, need, onePositional, printJSON, type Command } from './cli-kit.js'
import { checkWritable, writeUserFile } from './errors.js'
import { loadModel } from './model.js'
import { writeModel } from './onnx-export.js'
import { importModel } from './onnx-import.js'

export const exportCommand: Command = {
  name: 'export',
  summary: 'Write the compiled (approximated) model as standard ONNX: polynomials as Mul/Add, masks as constants.',
  usage: 'pic export MODEL [--approx SPEC --calib C.npy] -o OUT.onnx',
  options: {
    output: { type: 'string', short: 'o', arg: 'OUT.onnx', help: 'where to write the ONNX model' },
    ...APPROX_OPTIONS,
  },
  run(args) {
    const file = onePositional(args, exportCommand, 'MODEL')
    const out = need(args, 'output', exportCommand)
    checkWritable(out)
    const { compiled: g } = compileFor(loadModel(file), ckksBackend, args, [lowerForExport])
    const bytes = writeModel(g, { file: out, producerName: 'pic' })
    const back = importModel(bytes, { file: out })
    writeUserFile(out, bytes)
    const ops = opCounts(g)
    logger(args)(`wrote ${out} (${bytes.length} bytes, opset ${back.opset}, ${Object.values(ops).reduce((a, b) => a + b, 0)} nodes)`)
    if (flag(args, 'json')) printJSON({ output: out, opset: back.opset, ops })
  },
}
