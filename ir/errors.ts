/**
 * PicError: the base of every error that is the user's input's fault rather than a bug in PIC. The
 * CLI prints these as one line `pic: error: ...`; anything else is reported as an internal error.
 */
export class PicError extends Error {
  constructor(message: string) {
    // names read from a hostile file must not break the one-line form
    super(message.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))
    this.name = new.target.name
  }
}
