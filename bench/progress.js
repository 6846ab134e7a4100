'use strict';
// One status line on a terminal (section i/n, what runs now, elapsed time),
// rewritten in place; nothing at all when stderr is not a TTY, so logs and
// CI output stay clean.
class Progress {
  constructor(sections, stream = process.stderr) {
    this.sections = sections;
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
    this.t0 = Date.now();
    this.at = '';
    this.sub = '';
  }

  section(name, sub = '') {
    this.at = `${this.sections.indexOf(name) + 1}/${this.sections.length} ${name}`;
    this.sub = sub;
    this.show('');
  }

  /** The latest finished figure, e.g. "pair filelock sync". */
  show(what) {
    if (!this.tty) return;
    const s = ((Date.now() - this.t0) / 1000).toFixed(0);
    const text = `[${s}s] ${this.at}${this.sub ? ` · ${this.sub}` : ''}${what ? ` · ${what}` : ''}`;
    this.stream.write(`\r\x1b[K${text.slice(0, (this.stream.columns ?? 100) - 1)}`);
  }

  done(message) {
    if (this.tty) this.stream.write('\r\x1b[K');
    console.log(message);
  }
}

module.exports = { Progress };
