// The API keys page: copy a new key to the clipboard (the page works without this script). The
// button's words for what happened come with it, in the reader's language.
for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const text = document.querySelector(button.dataset.copy)?.textContent || "";
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = button.dataset.copied;
    } catch {
      // No clipboard permission (an old browser, plain http): select it for a manual copy.
      const range = document.createRange();
      range.selectNodeContents(document.querySelector(button.dataset.copy));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = button.dataset.copyByHand;
    }
  });
}
