"""Sources viewcast pulls itself: `viewcast pull wikipedia|youtube`, `viewcast pull` (every
registered source), `viewcast auth youtube` and `viewcast sources`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline import jobs
from pipeline.cli import morning
from pipeline.cli import terminal as show
from pipeline.cli.guard import guard
from pipeline.cli.main import Arg, JsonFlag, Opt, app, command
from pipeline.data.errors import ViewcastError
from pipeline.jobs import CONTACT_ENV, WIKIMEDIA_ENV, YOUTUBE_ENV, Access, Agent

pull_app = typer.Typer(
    help="Pull daily views from a source's API into the store (only the days not pulled yet). "
    "With no source named, pull every registered one.\n\nExit codes: 0 done (nothing new "
    "included), 2 error, 5 the source stayed down, 6 credentials refused.",
    no_args_is_help=False,
)
auth_app = typer.Typer(help="Authorise viewcast to read a source (once).", no_args_is_help=True)
app.add_typer(pull_app, name="pull")
app.add_typer(auth_app, name="auth")

Name = Annotated[str | None, Opt("--name", help="Series id in the store.")]
Contact = Annotated[
    str | None,
    Opt(envvar=CONTACT_ENV, help="Your email or URL, sent in the User-Agent (Wikimedia asks)."),
]


def _done(done: jobs.Pulled, as_json: bool) -> None:
    morning.pulled(done)
    if as_json:
        show.emit(
            {
                "sources": [show.plain(s) for s in done.sources],
                "store": None if done.report is None else show.plain(done.report),
            }
        )


@pull_app.callback(invoke_without_command=True)
def pull(ctx: typer.Context, contact: Contact = None, as_json: JsonFlag = False) -> None:
    """Pull every registered source (data/sources.json), or the one named."""
    ctx.meta["contact"] = contact
    if ctx.invoked_subcommand is None:
        everything = lambda: _done(jobs.pull(ctx.obj, None, contact=contact), as_json)  # noqa: E731
        guard(ctx, everything, as_json=as_json)


@command("wikipedia", group=pull_app)
def pull_wikipedia(
    ctx: typer.Context,
    articles: Annotated[
        list[str], Arg(help='Titles ("R (programming language)") or article URLs.')
    ],
    project: Annotated[str, Opt(help="The wiki (a URL's own wins).")] = "en.wikipedia",
    access: Annotated[Access, Opt(help="Which access.")] = "all-access",
    agent: Annotated[Agent, Opt(help="Which readers (user: people, not bots).")] = "user",
    name: Name = None,
    base_url: Annotated[
        str | None, Opt(help=f"The pageviews API's root (else ${WIKIMEDIA_ENV}).")
    ] = None,
    contact: Contact = None,
    as_json: JsonFlag = False,
) -> None:
    """Daily views of Wikipedia articles (Wikimedia's pageviews API, no key; from 2015-07-01),
    each into a series named after its title. Registers the source for `viewcast pull` and
    `viewcast daily --pull`."""
    if name and len(articles) > 1:
        raise ViewcastError("--name names one article's series; give one article with it")
    wanted = [jobs.wikipedia_source(a, project, access, agent, name, base_url) for a in articles]
    _done(jobs.pull(ctx.obj, wanted, contact=contact or ctx.meta.get("contact")), as_json)


@command("youtube", group=pull_app)
def pull_youtube(
    ctx: typer.Context,
    channel: Annotated[str, Opt(help="MINE (the authorised account's) or a channel id.")] = "MINE",
    name: Name = None,
    base_url: Annotated[
        str | None, Opt(help=f"The Analytics API's root (else ${YOUTUBE_ENV}).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A channel's daily views (YouTube Analytics API; run `viewcast auth youtube` once first).
    The last 3 days are provisional: the next pull asks for them again and records revisions."""
    wanted = [jobs.youtube_source(channel, name, base_url)]
    _done(jobs.pull(ctx.obj, wanted, contact=ctx.meta.get("contact")), as_json)


@command("youtube", group=auth_app)
def auth_youtube(
    ctx: typer.Context,
    client_secrets: Annotated[
        Path, Opt(help="The OAuth client file of a desktop app (Google Cloud > Credentials).")
    ],
    browser: Annotated[
        bool, Opt("--browser/--no-browser", help="No browser here: paste the address back.")
    ] = True,
) -> None:
    """Authorise read-only access to your channel's analytics (OAuth, installed-app flow). The
    token is saved in secrets/ (mode 0600), refreshed by itself, and never printed."""

    def ask(url: str) -> str:
        typer.echo(f"Open this address in any browser and allow access:\n\n{url}\n", err=True)
        return typer.prompt(
            "Then paste the address the browser was sent to (it may not load) or the code",
            err=True,
        )

    path = jobs.authorize(ctx.obj, client_secrets, browser, ask)
    typer.echo(f"token saved in {path} (mode 0600); `viewcast pull youtube` can run unattended")


@command("sources", writes=False)
def sources_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The registered sources: what each pulls, into which series, and how far."""
    found = jobs.sources(ctx.obj)
    if as_json:
        show.emit([s.to_json() for s in found])
        return
    rows = [
        [s.label, s.name, s.last_day or "-", s.final_through or "-", f"{len(s.revisions):,}"]
        for s in found
    ]
    show.table(
        f"sources: {ctx.obj.sources}",
        ("source", "series", "last day", "final to", "revisions"),
        rows,
    )
