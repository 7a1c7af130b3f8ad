"""Every text the customer bot sends, by key: English strings with named placeholders.

Handlers never hold a sentence of their own; they call :func:`text` with a key and values.
The languages issue (DESIGN 4.15) translates this table (``language`` is already passed)
without touching a handler.
"""

from __future__ import annotations

from typing import Any

#: Key → English template (``str.format`` with named fields).
TEXTS: dict[str, str] = {
    # accounts
    "welcome_new": (
        "Welcome! Your account is ready. Send me a description and I will draw it; send a photo "
        "with a caption to change it.\n\n/help lists what I can do."
    ),
    "welcome_back": "Welcome back! Send me a description and I will draw it. /help for more.",
    "linked": "This Telegram account is now linked to {account}. Your images and plan are shared.",
    "link_bad": "This link does not work: it is unknown, used or older than 15 minutes. "
    "Make a new one on your account page.",
    "link_taken": "This Telegram account already belongs to another nproxy account. Unlink it "
    "there first, then open a new link.",
    "link_other_account": "Your nproxy account is already linked to another Telegram account. "
    "Unlink it on the account page first.",
    "start_bad": "I do not know this start link. Send /start to begin.",
    "web_link": "Open this link within 15 minutes to log in on the web (it works once):\n{link}",
    "blocked": "This account is blocked. Contact support.",
    "referral_recorded": "You were invited by a friend: welcome!",
    # help and commands
    "help": (
        "Send a description: I draw it with your settings.\n"
        "Send a photo (or up to 10 in an album) with a caption: I change it as the caption "
        "says.\n\n"
        "/balance what is left of your plan and packs\n"
        "/buy plans and credit packs\n"
        "/settings model, resolution and batch\n"
        "/history your last 10 images\n"
        "/invite your invitation link\n"
        "/language the bot's language\n"
        "/web a login link for the web app\n"
        "/paysupport help with a payment"
    ),
    "unknown_command": "I do not know that command. /help lists what I can do.",
    "balance": "Plan: {plan}\nQuota left: about {bucket}%\nPeriod ends: {ends}\n{packs}",
    "balance_none": "You have no plan yet. /buy shows plans and credit packs.\n{packs}",
    "balance_pack": "Pack {label}: {units} units until {expires}",
    "balance_no_packs": "No credit packs.",
    "buy_intro": "Plans and packs:",
    "buy_item": "{name}: {price}",
    "buy_web": "Pay by card or crypto on the web:\n{link}",
    "paysupport": (
        "Payment questions: write to us from the web app ({link}) or reply here with your "
        "question and the date of the payment. Refunds of Telegram Stars go back to your "
        "Telegram balance."
    ),
    "stars_unavailable": "Payments in Telegram Stars are not available here. Please pay on "
    "the web.",
    "invoice_refused": "Telegram did not take the invoice; please try again.",
    "no_image": "the provider made no image",
    "price_stars": "{price} or {stars} ★",
    "btn_buy_stars": "{name} ★",
    "paid": "Thank you! Your payment is confirmed. /balance shows what you have now.",
    "paid_review": "Thank you! Your payment arrived and is being checked; we will confirm it "
    "shortly.",
    "invite": "Invite friends with this link:\n{link}",
    "invite_unavailable": "Invitations are not available yet.",
    "language_pick": "Choose the bot's language:",
    "language_set": "Language saved: {language}.",
    "settings": "Model: {model}\nResolution: {resolution}\nImages per message: {batch}",
    "settings_saved": "Saved.",
    "settings_choose": "Choose one:",
    "history_empty": "You have no images yet. Send a description to make one.",
    "history_item": "{when}: {prompt}",
    # generating
    "working": "Working on it…",
    "done": "Done: {count} image(s).",
    "failed": "No image this time: {reason}",
    "refused": "{reason}",
    "busy": "You already have {count} images in progress. Wait for them, then send more.",
    # bad input
    "bad_file": "I can only use photos (JPEG, PNG or WebP). Send the picture as a photo.",
    "photo_too_big": "This photo is larger than 20 MB; send a smaller one.",
    "no_caption": "Add a caption to the photo saying what to change.",
    "caption_too_long": "The description is longer than {limit} characters; shorten it.",
    "album_too_big": "An album can have at most {limit} photos for this model; send fewer.",
    "sticker": "Stickers cannot be used. Send a photo or a description.",
    "unsupported": "I can use a description or a photo with a caption.",
    "button_bad": "This button does not work any more.",
    "button_not_yours": "This button belongs to someone else's message.",
    "no_larger": "This image is already the largest size.",
    "error": "Something went wrong on our side; please try again in a minute.",
    # buttons
    "btn_regenerate": "Regenerate",
    "btn_vary": "Vary",
    "btn_larger": "Larger ({resolution})",
    "btn_original": "Original file",
    "btn_model": "Model: {model}",
    "btn_resolution": "Resolution: {resolution}",
    "btn_batch": "Batch: {batch}",
    "btn_buy_web": "Pay on the web",
    # commands menu (setMyCommands)
    "cmd_start": "Start",
    "cmd_help": "What I can do",
    "cmd_balance": "Plan and quota left",
    "cmd_buy": "Plans and credit packs",
    "cmd_settings": "Model, resolution, batch",
    "cmd_history": "Your last images",
    "cmd_invite": "Invite friends",
    "cmd_language": "Language",
    "cmd_web": "Log in on the web",
    "cmd_paysupport": "Help with a payment",
}

#: Languages /language offers (the texts are English until the languages issue).
LANGUAGES: dict[str, str] = {"en": "English", "ru": "Русский", "uz": "O'zbekcha"}


def text(key: str, language: str = "en", /, **values: Any) -> str:
    """The text ``key`` in ``language`` with ``values`` filled in."""
    return TEXTS[key].format(**values)
