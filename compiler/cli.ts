/**
 * The `pic` command line: dispatches to the command table, prints help, and turns every failure
 * into one line `pic: error: ...` on stderr with a non-zero exit (a stack trace only with --debug).
 */
import { COMMANDS } from './commands.js'
import { helpText, parse, UsageError } from './cli-kit.js'
import { PicError } from './errors.js'

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2
  return [
    'pic: the private-inference compiler (ONNX -> CKKS plans and two-party MPC schedules)',
    '',
    'usage: pic COMMAND [options]   (pic COMMAND --help for its options)',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    '',
  ].join('\n')
}

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug')
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp())
    return name ? 0 : 2
  }
  const cmd = COMMANDS.find((c) => c.name === name)
  try {
    if (!cmd) throw new UsageError(`unknown command '${name}'`)
    const args = parse(cmd, rest)
    if (args.values.help) {
      process.stdout.write(helpText(cmd))
      return 0
    }
    const code = await cmd.run(args)
    return typeof code === 'number' ? code : 0
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pic: error: ${e.message}\n${e.cmd ? `usage: ${e.cmd.usage}\n` : 'run pic --help for the commands\n'}`)
      return 2
    }
    const known = e instanceof PicError
    const msg = e instanceof Error ? e.message : String(e)
    process.stderr.write(`pic: error: ${known ? '' : 'internal error: '}${msg.split('\n')[0]}\n`)
    if (debug && e instanceof Error) process.stderr.write(`${e.stack}\n`)
    return 1
  }
}

const code = await main(process.argv.slice(2))
process.exitCode = code
