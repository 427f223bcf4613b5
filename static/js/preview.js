// A canvas that shows the newest preview it can. Frames decode off the main thread
// (createImageBitmap), one at a time: while one decodes, newer arrivals replace each other and the
// newest is decoded next. So a slow device paints fewer frames but always a recent one (cancelling
// a decode whenever a newer frame arrives would starve it), and the picture never goes back.
//
// A preview travels at the resolution it carries: a latent2rgb one has a pixel per latent cell (32x32
// for a 256 px image). The canvas takes the size of the image it previews (at most `maxSide` px a
// side) and the frame is drawn onto it with the browser's high-quality smoothing, so the picture
// reads as a soft image forming, not as a mosaic of cells.

import { previewImageSize } from "./protocol.js";

export const MAX_PREVIEW_SIDE = 512;

/** [width, height] scaled down, aspect kept, so that neither side exceeds `maxSide`; never up. */
export function fitSize([width, height], maxSide = MAX_PREVIEW_SIDE) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

export class PreviewSurface {
  constructor(canvas, { onPaint = null, maxSide = MAX_PREVIEW_SIDE } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onPaint = onPaint;
    this.maxSide = maxSide;
    this.frames = 0; // frames painted (also in canvas.dataset.frames)
    this.epoch = 0; // bumped by reset and showUrl: decodes started before are not painted
    this.pending = null;
    this.decoding = false;
  }

  /**
   * Queue an image Blob (a preview frame) for painting; only the newest waiting one is kept. It is
   * scaled to the size of the image it previews, which its `description` (the event's
   * message.preview) gives; without one, it is shown at its own size.
   */
  showBlob(blob, description = null) {
    const imageSize = previewImageSize(description);
    this.pending = { blob, imageSize, epoch: this.epoch };
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
  reset(width = MAX_PREVIEW_SIDE, height = MAX_PREVIEW_SIDE) {
    this.epoch += 1;
    this.pending = null;
    this.frames = 0;
    this.canvas.dataset.frames = "0";
    [this.canvas.width, this.canvas.height] = fitSize([width, height], this.maxSide);
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  async #drain() {
    this.decoding = true;
    while (this.pending) {
      const { blob, imageSize, epoch } = this.pending;
      this.pending = null;
      let bitmap;
      try {
        bitmap = await createImageBitmap(blob);
      } catch {
        continue; // an undecodable frame: the next one will do
      }
      if (epoch === this.epoch) this.#paint(bitmap, ...fitSize(imageSize ?? [bitmap.width, bitmap.height], this.maxSide));
      bitmap.close();
    }
    this.decoding = false;
  }

  #paint(source, width, height) {
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    // Resizing a canvas resets its context, smoothing settings included: set them for every paint.
    this.context.imageSmoothingEnabled = true;
    this.context.imageSmoothingQuality = "high";
    this.context.drawImage(source, 0, 0, width, height);
    this.frames += 1;
    this.canvas.dataset.frames = String(this.frames);
    this.onPaint?.();
  }
}
