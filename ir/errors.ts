/**
 * PicError: the base of every error that is the user's input's fault rather than a bug in PIC. The
 * CLI prints these as one line `pic: error: ...`; anything else is reported as an internal error.
 */
export class PicError extends Error {
  constructor(message: string) {
    super(message)
    this.name = new.target.name
  }
}
