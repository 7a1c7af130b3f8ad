// The chat's words in the reader's language (DESIGN 4.15). The page embeds its catalog
// (templates/chat/_catalog.html), made by the package build from the .po files; a message the
// catalog lacks, and every message in English, is the English text written in the code.
// Placeholders are gettext's own, "%(name)s", so pybabel extracts these calls as they are.

const source = document.getElementById("chat-catalog");
const catalog = source ? JSON.parse(source.textContent) : { plural: ["one", "other"], messages: {} };
export const language = document.documentElement.lang || "en";
const pluralRules = new Intl.PluralRules(language);

// "%%" is a percent sign, as in Python's formatting of the same catalogs.
const fill = (text, values) => text.replace(/%\((\w+)\)s|%%/g,
  (whole, name) => (whole === "%%" ? "%" : name in values ? String(values[name]) : whole));

/** `message` translated, its "%(name)s" placeholders filled from `values`. */
export function gettext(message, values = {}) {
  const translated = catalog.messages[message];
  return fill(typeof translated === "string" ? translated : message, values);
}

/** The form of a message for `n` in the reader's language; "%(num)s" is `n`. */
export function ngettext(singular, plural, n, values = {}) {
  const forms = catalog.messages[singular];
  let text = n === 1 ? singular : plural;
  if (Array.isArray(forms)) {
    // The catalog's forms are in the order of the language's CLDR categories (localizers.py).
    const index = catalog.plural.indexOf(pluralRules.select(n));
    text = forms[index >= 0 ? index : forms.length - 1];
  }
  return fill(text, { num: n, ...values });
}
