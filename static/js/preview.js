// A canvas that shows the newest preview it can. Frames decode off the main thread
// (createImageBitmap), one at a time: while one decodes, newer arrivals replace each other and the
// newest is decoded next. So a slow device paints fewer frames but always a recent one (cancelling
// a decode whenever a newer frame arrives would starve it), and the picture never goes back.

export class PreviewSurface {
  constructor(canvas, { onPaint = null } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onPaint = onPaint;
    this.frames = 0; // frames painted (also in canvas.dataset.frames)
    this.epoch = 0; // bumped by reset and showUrl: decodes started before are not painted
    this.pending = null;
    this.decoding = false;
  }

  /** Queue an image Blob (a preview frame) for painting; only the newest waiting one is kept. */
  showBlob(blob) {
    this.pending = { blob, epoch: this.epoch };
    if (!this.decoding) this.#drain();
  }

  /** Paint an image from an address (the final output); frames queued before it are dropped. */
  async showUrl(url) {
    const epoch = ++this.epoch;
    this.pending = null;
    const image = new Image();
    image.decoding = "async";
    image.src = url;
    try {
      await image.decode();
    } catch {
      return false;
    }
    if (epoch !== this.epoch) return false;
    this.#paint(image, image.naturalWidth, image.naturalHeight);
    return true;
  }

  /** Blank the canvas at a size (the task's aspect ratio before its first frame). */
  reset(width = 512, height = 512) {
    this.epoch += 1;
    this.pending = null;
    this.frames = 0;
    this.canvas.dataset.frames = "0";
    const scale = Math.min(1, 512 / Math.max(width, height));
    this.canvas.width = Math.max(1, Math.round(width * scale));
    this.canvas.height = Math.max(1, Math.round(height * scale));
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  async #drain() {
    this.decoding = true;
    while (this.pending) {
      const { blob, epoch } = this.pending;
      this.pending = null;
      let bitmap;
      try {
        bitmap = await createImageBitmap(blob);
      } catch {
        continue; // an undecodable frame: the next one will do
      }
      if (epoch === this.epoch) this.#paint(bitmap, bitmap.width, bitmap.height);
      bitmap.close();
    }
    this.decoding = false;
  }

  #paint(source, width, height) {
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.context.drawImage(source, 0, 0, width, height);
    this.frames += 1;
    this.canvas.dataset.frames = String(this.frames);
    this.onPaint?.();
  }
}
