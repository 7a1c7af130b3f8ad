"""Every text the customer bot sends, by key: English strings with named placeholders, marked
for translation and read in the customer's language from the same catalogs as the web
(DESIGN 4.15).

Handlers never hold a sentence of their own; they call :func:`text` with a key, a language
and values.
"""

from __future__ import annotations

from typing import Any

from nproxy_core.i18n import DOMAIN, LANGUAGES, _
from nproxy_core.i18n.localizers import catalog_localizer

__all__ = ["LANGUAGES", "TEXTS", "text"]


class Counted(str):
    """A text that counts something (``{count}``): its English singular, remembering the
    plural; the reader's language picks its own form (Russian has three)."""

    plural: str


def ngettext(singular: str, plural: str) -> Counted:
    """Marks a counting text for the catalogs (Babel reads ``ngettext``'s two strings as one
    plural message); :func:`text` picks the form for ``count``."""
    counted = Counted(singular)
    counted.plural = plural
    return counted


#: Key → English template (``str.format`` with named fields), marked for the catalogs.
TEXTS: dict[str, str] = {
    # accounts
    "welcome_new": _(
        "Welcome! Your account is ready. Send me a description and I will draw it; send a photo "
        "with a caption to change it.\n\n/help lists what I can do."
    ),
    "welcome_back": _("Welcome back! Send me a description and I will draw it. /help for more."),
    "linked": _(
        "This Telegram account is now linked to {account}. Your images and plan are shared."
    ),
    "link_bad": _(
        "This link does not work: it is unknown, used or older than 15 minutes. "
        "Make a new one on your account page."
    ),
    "link_taken": _(
        "This Telegram account already belongs to another nproxy account. Unlink it "
        "there first, then open a new link."
    ),
    "link_other_account": _(
        "Your nproxy account is already linked to another Telegram account. "
        "Unlink it on the account page first."
    ),
    "start_bad": _("I do not know this start link. Send /start to begin."),
    "web_link": _("Open this link within 15 minutes to log in on the web (it works once):\n{link}"),
    "blocked": _("This account is blocked. Contact support."),
    "referral_recorded": _("You were invited by a friend: welcome!"),
    # help and commands
    "help": _(
        "Send a description: I draw it with your settings.\n"
        "Send a photo (or up to 10 in an album) with a caption: I change it as the caption "
        "says.\n\n"
        "/templates ready-made recipes: answer a few questions, get a picture\n"
        "/balance what is left of your plan and packs\n"
        "/buy plans and credit packs\n"
        "/settings model, resolution and batch\n"
        "/history your last 10 images\n"
        "/invite your invitation link\n"
        "/language the bot's language\n"
        "/web a login link for the web app\n"
        "/paysupport help with a payment"
    ),
    "unknown_command": _("I do not know that command. /help lists what I can do."),
    "balance": _("Plan: {plan}\nQuota left: about {bucket}%\nPeriod ends: {ends}\n{packs}"),
    "balance_none": _("You have no plan yet. /buy shows plans and credit packs.\n{packs}"),
    "balance_pack": _("Pack {label}: {units} units until {expires}"),
    "balance_no_packs": _("No credit packs."),
    "buy_intro": _("Plans and packs:"),
    "buy_item": _("{name}: {price}"),
    "buy_web": _("Pay by card or crypto on the web:\n{link}"),
    "paysupport": _(
        "Payment questions: write to us from the web app ({link}) or reply here with your "
        "question and the date of the payment. Refunds of Telegram Stars go back to your "
        "Telegram balance."
    ),
    "stars_unavailable": _(
        "Payments in Telegram Stars are not available here. Please pay on the web."
    ),
    "invoice_refused": _("Telegram did not take the invoice; please try again."),
    "no_image": _("the provider made no image"),
    "price_stars": _("{price} or {stars} ★"),
    "btn_buy_stars": _("{name} ★"),
    "paid": _("Thank you! Your payment is confirmed. /balance shows what you have now."),
    "paid_review": _(
        "Thank you! Your payment arrived and is being checked; we will confirm it shortly."
    ),
    "invite": _("Invite friends with this link:\n{link}"),
    "invite_unavailable": _("Invitations are not available yet."),
    "language_pick": _("Choose the bot's language:"),
    "language_set": _("Language saved: {language}."),
    "settings": _("Model: {model}\nResolution: {resolution}\nImages per message: {batch}"),
    "settings_saved": _("Saved."),
    "settings_choose": _("Choose one:"),
    "history_empty": _("You have no images yet. Send a description to make one."),
    "history_item": _("{when}: {prompt}"),
    # generating
    "working": _("Working on it…"),
    "done": ngettext("Done: {count} image.", "Done: {count} images."),
    "failed": _("No image this time: {reason}"),
    "refused": _("{reason}"),
    "busy": _("You already have {count} images in progress. Wait for them, then send more."),
    # bad input
    "bad_file": _("I can only use photos (JPEG, PNG or WebP). Send the picture as a photo."),
    "photo_too_big": _("This photo is larger than 20 MB; send a smaller one."),
    "no_caption": _("Add a caption to the photo saying what to change."),
    "caption_too_long": _("The description is longer than {limit} characters; shorten it."),
    "album_too_big": _("An album can have at most {limit} photos for this model; send fewer."),
    "sticker": _("Stickers cannot be used. Send a photo or a description."),
    "unsupported": _("I can use a description or a photo with a caption."),
    "button_bad": _("This button does not work any more."),
    "button_not_yours": _("This button belongs to someone else's message."),
    "no_larger": _("This image is already the largest size."),
    "error": _("Something went wrong on our side; please try again in a minute."),
    # templates (a form asked one field at a time)
    "templates_pick": _("Choose a template; I will ask for what it needs, one question at a time:"),
    "templates_none": _("There are no templates yet. Send a description instead."),
    "template_gone": _(
        "This template is not available any more. /templates lists the current ones."
    ),
    "template_start": _("{title}\n{description}\n\n/cancel stops this form."),
    "optional_label": _("{label} (optional)"),
    "ask_select": _("{label}: choose one."),
    "ask_text": _("{label}: reply with your answer (up to {limit} characters)."),
    "ask_image": _("{label}: send a photo."),
    "form_pick_option": _("{label}: choose one of the buttons ({options})."),
    "form_want_text": _("{label}: reply with text."),
    "form_want_photo": _("{label}: send a photo (JPEG, PNG or WebP)."),
    "form_one_photo": _("{label}: send one photo, not an album."),
    "form_too_long": _("{label}: at most {limit} characters; send a shorter answer."),
    "form_photo_too_big": _("{label}: this photo is larger than 20 MB; send a smaller one."),
    "form_photo_refused": _("{label}: {reason}"),
    "form_button_stale": _(
        "That button is not for this question. The form is waiting for: {label}."
    ),
    "form_gone": _("This form is closed. /templates starts a new one."),
    "form_cancelled": _("The template form is closed; nothing was made."),
    "nothing_to_cancel": _("There is nothing to cancel."),
    # buttons
    "btn_regenerate": _("Regenerate"),
    "btn_vary": _("Vary"),
    "btn_larger": _("Larger ({resolution})"),
    "btn_original": _("Original file"),
    "btn_model": _("Model: {model}"),
    "btn_resolution": _("Resolution: {resolution}"),
    "btn_batch": _("Batch: {batch}"),
    "btn_buy_web": _("Pay on the web"),
    "btn_skip": _("Skip"),
    # commands menu (setMyCommands)
    "cmd_start": _("Start"),
    "cmd_help": _("What I can do"),
    "cmd_templates": _("Templates: answer a few questions"),
    "cmd_balance": _("Plan and quota left"),
    "cmd_buy": _("Plans and credit packs"),
    "cmd_settings": _("Model, resolution, batch"),
    "cmd_history": _("Your last images"),
    "cmd_invite": _("Invite friends"),
    "cmd_language": _("Language"),
    "cmd_web": _("Log in on the web"),
    "cmd_paysupport": _("Help with a payment"),
}


def text(key: str, language: str = "en", /, **values: Any) -> str:
    """The text ``key`` in ``language`` (English when it is not offered) with ``values``
    filled in."""
    template, localizer = TEXTS[key], catalog_localizer(language)
    if isinstance(template, Counted):
        chosen = localizer.pluralize(template, template.plural, values["count"], domain=DOMAIN)
        return chosen.format(**values)
    return localizer.translate(template).format(**values)
