// The lightbox: one result image enlarged, with its download link.
import { ui } from "./page.js";

export function openLightbox(url, alt, name) {
  ui.lightboxImage.src = url;
  ui.lightboxImage.alt = alt;
  ui.lightboxDownload.href = url;
  ui.lightboxDownload.download = name;
  ui.lightbox.showModal();
  ui.lightboxClose.focus();
}

export function wireLightbox() {
  ui.lightboxClose.addEventListener("click", () => ui.lightbox.close());
  ui.lightbox.addEventListener("click", (event) => {
    if (event.target === ui.lightbox) ui.lightbox.close(); // a click on the backdrop
  });
}
