"""``gridwatch tags list|explain|stats|history|profile|check`` and
``gridwatch import customers|billing|crm FILE.csv``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from gridwatch._registry import Registry
    from gridwatch.tags._catalogue import Catalogue
    from gridwatch.tags._store import TagStore

tags_app = typer.Typer(help="Customer tags: the catalogue, a customer's tags with their reasons "
                       "and history, tag counts of a grid cell.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file.")]
CatalogueOpt = Annotated[Path, typer.Option(
    "--catalogue", help="Tag catalogue: a folder of YAML files or one file.")]
TariffOpt = Annotated[Path, typer.Option(
    "--tariff", help="Time-of-use schedule (config/tariffs/<region>.yaml).")]
DbOpt = Annotated[Path | None, typer.Option(
    "--db", help="Tag store (default: alerts.tags_db, or tags.sqlite beside the alert state "
                 "database).")]
RegistryOpt = Annotated[Path | None, typer.Option(
    "--registry", help="Registry file (default: alerts.registry of the settings).")]
DayOpt = Annotated[str | None, typer.Option(
    "--day", help="Evaluate as of this day (YYYY-MM-DD; default: the day of the stored "
                  "features).")]

DEFAULT_CATALOGUE = Path("config/tags")
DEFAULT_TARIFF = Path("config/tariffs/guangdong.yaml")


def _fail(msg: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _context(config: Path | None, db: Path | None, need_registry: bool = False,
             registry_path: Path | None = None) -> tuple[TagStore, Registry | None]:
    from gridwatch._cli_common import settings_or_exit
    from gridwatch._registry import Registry, RegistryError
    from gridwatch.tags._notes import tags_db_path
    from gridwatch.tags._store import TagStore

    settings = settings_or_exit(config)
    path = db or tags_db_path(settings.alerts)
    registry = None
    try:
        registry = Registry.load(registry_path or settings.alerts.registry)
    except RegistryError as exc:
        if need_registry:
            raise _fail(str(exc)) from None
    return TagStore(path), registry


def _catalogue(catalogue: Path, registry: Registry | None = None) -> Catalogue:
    from gridwatch.tags._catalogue import Catalogue, CatalogueError

    try:
        return Catalogue.load(catalogue, dict(registry.attribute_schema) if registry else {})
    except CatalogueError as exc:
        raise _fail(str(exc)) from None


@tags_app.command("check")
def check(catalogue: CatalogueOpt = DEFAULT_CATALOGUE, tariff: TariffOpt = DEFAULT_TARIFF
          ) -> None:
    """Validate the catalogue, the strategies and the time-of-use schedule; one line naming
    the tag and the problem when something is wrong (exit 2)."""
    from gridwatch.tags._catalogue import CatalogueError
    from gridwatch.tags._relevance import Relevance
    from gridwatch.tags._strategy import Strategies
    from gridwatch.tags._tariff import TariffError, TouSchedule

    cat = _catalogue(catalogue)
    try:
        TouSchedule.load(tariff)
        folder = catalogue if catalogue.is_dir() else catalogue.parent
        n_strat = 0
        if (folder / "strategies.yaml").exists():
            n_strat = len(Strategies.load(folder / "strategies.yaml", cat.by_id).items)
        n_rel = 0
        if (folder / "relevance.yaml").exists():
            n_rel = len(Relevance.load(folder / "relevance.yaml", cat.by_id).alerts)
    except (CatalogueError, TariffError) as exc:
        raise _fail(str(exc)) from None
    dims: dict[str, int] = {}
    for t in cat:
        dims[t.dimension] = dims.get(t.dimension, 0) + 1
    out.print(f"[green]{len(cat)} tags valid[/] ({', '.join(f'{k} {v}' for k, v in dims.items())}"
              f"); {n_strat} strategies; tags in messages chosen for {n_rel} alert types; "
              f"schedule {tariff}")


@tags_app.command("list")
def list_tags(
    catalogue: CatalogueOpt = DEFAULT_CATALOGUE,
    dimension: Annotated[str | None, typer.Option(help="basic, usage, value or needs")] = None,
    customer_class: Annotated[str | None, typer.Option("--class", help="Only tags of this "
                                                       "customer class.")] = None,
    lang: Annotated[str, typer.Option(help="Name language: zh or en.")] = "en",
    tsv: Annotated[bool, typer.Option("--tsv", help="Tab-separated lines.")] = False,
) -> None:
    """The tags of the catalogue with their dimension, classes and definition."""
    cat = _catalogue(catalogue)
    tags = cat.for_class(customer_class) if customer_class else list(cat)
    tags = [t for t in tags if dimension is None or t.dimension == dimension]
    if tsv:
        for t in tags:
            name = t.spec.name.zh if lang == "zh" else t.spec.name.en
            typer.echo("\t".join((t.id, t.dimension, name, ",".join(t.spec.classes) or "all",
                                  t.spec.when)))
        return
    table = Table(title=f"{len(tags)} tags", show_lines=False)
    for col in ("id", "dimension", "name", "classes", "definition"):
        table.add_column(col)
    for t in tags:
        table.add_row(t.id, t.dimension, t.spec.name.zh if lang == "zh" else t.spec.name.en,
                      ",".join(c[:3] for c in t.spec.classes) or "all", t.spec.when)
    out.print(table)


@tags_app.command("explain")
def explain(
    customer: Annotated[str, typer.Option("--customer", help="Customer id.")],
    config: ConfigOpt = None, db: DbOpt = None, day: DayOpt = None,
    catalogue: CatalogueOpt = DEFAULT_CATALOGUE, tariff: TariffOpt = DEFAULT_TARIFF,
    registry: RegistryOpt = None,
    lang: Annotated[str, typer.Option(help="Language of the reasons: zh or en.")] = "en",
) -> None:
    """A customer's tags now, each with its reason, the tag history and the service
    strategies that apply."""
    from gridwatch.tags._profiler import TagProfiler

    store, reg = _context(config, db, registry_path=registry)
    got = store.features(customer)
    if got is None and not store.current(customer):
        raise _fail(f"no profile of customer {customer!r} in {store.path}", 1)
    prof = TagProfiler.from_config(catalogue, tariff, registry=reg, store=store)
    prof.load_features([customer])
    when = date.fromisoformat(day) if day else (got[3] if got else date.today())
    ex = prof.explain(customer, when)
    out.print(f"[bold]{customer}[/] as of {when}"
              + (f" — segment: {ex.segment}" if ex.segment else ""))
    table = Table(show_header=True)
    table.add_column("dimension")
    table.add_column("tag")
    table.add_column("reason")
    for h in sorted(ex.tags, key=lambda h: ("basic", "usage", "value", "needs").index(
            h.dimension)):
        sep = "：" if lang == "zh" and h.reason_zh else ": "
        table.add_row(h.dimension, h.tag, h.text(lang).split(sep, 1)[-1])
    out.print(table)
    if ex.history:
        out.print("[bold]history[/]")
        for e in ex.history[-20:]:
            out.print(f"  {e.describe(when, lang)}", highlight=False)
    for s in ex.strategies:
        advice = s.advice.zh if lang == "zh" else s.advice.en
        out.print(f"[bold]strategy {s.id}[/] → {s.route}/{s.template}: {advice}",
                  highlight=False)
    out.print("figures: " + ", ".join(f"{k}={v}" for k, v in ex.features.items()),
              highlight=False, soft_wrap=True)


@tags_app.command("history")
def history(
    customer: Annotated[str, typer.Option("--customer", help="Customer id.")],
    tag: Annotated[str | None, typer.Option(help="Only this tag.")] = None,
    config: ConfigOpt = None, db: DbOpt = None,
) -> None:
    """When each tag appeared and left."""
    store, _ = _context(config, db)
    today = date.today()
    got = store.features(customer)
    if got:
        today = got[3]
    entries = store.history(customer, tag)
    if not entries:
        raise _fail(f"no tag history of customer {customer!r}", 1)
    for e in entries:
        out.print(e.describe(today), highlight=False)


@tags_app.command("stats")
def stats(
    cell: Annotated[str | None, typer.Option("--cell", help="Grid cell id (all cells when "
                                             "unset).")] = None,
    config: ConfigOpt = None, db: DbOpt = None, registry: RegistryOpt = None,
    top: Annotated[int, typer.Option(help="Show this many tags.")] = 40,
) -> None:
    """How many customers of a grid cell carry each tag, and tags per customer."""
    import statistics

    store, reg = _context(config, db, need_registry=cell is not None, registry_path=registry)
    ids = None
    if cell is not None:
        assert reg is not None
        if reg.cell(cell) is None:
            raise _fail(f"grid cell {cell!r} is not in the registry")
        ids = [c.id for c in reg.customers if c.grid_cell == cell]
    counts = store.tag_counts(ids)
    per = store.tags_per_customer(ids)
    n = len(ids) if ids is not None else len(per)
    table = Table(title=f"tags of {n} customers" + (f" in cell {cell}" if cell else ""))
    table.add_column("tag")
    table.add_column("customers", justify="right")
    table.add_column("share", justify="right")
    for tag, k in list(counts.items())[:top]:
        table.add_row(tag, str(k), f"{k / max(n, 1):.0%}")
    out.print(table)
    if per:
        out.print(f"tags per customer: median {statistics.median(per.values()):g}, "
                  f"min {min(per.values())}, max {max(per.values())}")
        by_dim = store.tags_per_dimension(ids)
        dims = Table(title="tags per customer by dimension")
        dims.add_column("dimension")
        dims.add_column("customers with one or more", justify="right")
        dims.add_column("median", justify="right")
        dims.add_column("max", justify="right")
        for dim in ("basic", "usage", "value", "needs"):
            got = [d.get(dim, 0) for d in by_dim.values()]
            got += [0] * (n - len(got))
            dims.add_row(dim, str(sum(1 for k in got if k)),
                         f"{statistics.median(got) if got else 0:g}", str(max(got, default=0)))
        out.print(dims)


@tags_app.command("profile")
def profile(
    fleet: Annotated[Path, typer.Option("--fleet", help="Fleet file to simulate.",
                                        exists=True)] = Path("config/fleets/demo.yaml"),
    days: Annotated[int | None, typer.Option(help="Simulated days (default: the fleet's).")]
    = None,
    config: ConfigOpt = None, db: DbOpt = None,
    catalogue: CatalogueOpt = DEFAULT_CATALOGUE, tariff: TariffOpt = DEFAULT_TARIFF,
    registry_out: Annotated[Path | None, typer.Option(
        "--registry-out", help="Also write the fleet's registry here (for stats --registry).")]
    = None,
) -> None:
    """Simulate a fleet through the per-meter models, tag every customer and store the tags:
    prints the median tags per customer and whether each has a reason."""
    from gridwatch.tags._fleetrun import profile_fleet

    store, _ = _context(config, db)
    res = profile_fleet(fleet, days=days, catalogue=catalogue, tariff=tariff, store=store)
    out.print(f"{res.customers} customers, {res.meters} meters, {res.readings:,} readings, "
              f"{res.profiles:,} daily profiles, {res.events} events; tagged as of {res.day}")
    out.print(f"tags per customer: median {res.median_tags:g} (min {res.min_tags}, max "
              f"{res.max_tags}); every tag with a reason: {res.all_reasons}; "
              f"{res.distinct_tags} distinct tags")
    out.print("median per dimension: " + ", ".join(f"{k} {v:g}"
                                                   for k, v in res.by_dimension.items()))
    if registry_out is not None and res.registry is not None:
        import yaml

        registry_out.parent.mkdir(parents=True, exist_ok=True)
        registry_out.write_text(yaml.safe_dump(res.registry.model_dump(
            mode="json", by_alias=True, exclude_defaults=True), allow_unicode=True),
            encoding="utf-8")
        out.print(f"registry written to {registry_out}")
    out.print(f"stored in {store.path}")


def import_command(
    kind: Annotated[str, typer.Argument(help="customers, billing or crm")],
    path: Annotated[Path, typer.Argument(help="CSV file.", exists=True)],
    config: ConfigOpt = None, db: DbOpt = None, registry: RegistryOpt = None,
    catalogue: CatalogueOpt = DEFAULT_CATALOGUE,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Import the good rows of a file with bad rows (counted).")] = False,
    any_customer: Annotated[bool, typer.Option(
        "--any-customer", help="Accept customer ids the registry does not know.")] = False,
) -> None:
    """Import customer attributes, billing records or CRM data (validated; one line per bad
    row naming the row and the column). Exit 1 when rows were refused."""
    from gridwatch.tags._catalogue import CatalogueError, load_schema
    from gridwatch.tags._imports import IMPORT_KINDS, import_csv

    if kind not in IMPORT_KINDS:
        raise _fail(f"unknown import {kind!r} (known: {', '.join(IMPORT_KINDS)})")
    store, reg = _context(config, db, need_registry=not any_customer,
                          registry_path=registry)
    folder = catalogue if catalogue.is_dir() else catalogue.parent
    try:
        schema = load_schema(folder / "attributes.yaml") \
            if (folder / "attributes.yaml").exists() else {}
    except CatalogueError as exc:
        raise _fail(str(exc)) from None
    if reg is not None:
        schema.update(reg.attribute_schema)
    known = None if any_customer or reg is None else {c.id for c in reg.customers}
    res = import_csv(kind, path, store, schema, known_customers=known, skip_bad=skip_bad)
    for line in res.errors:
        err.print(line, highlight=False, soft_wrap=True, markup=False)
    if res.errors and not res.imported:
        err.print(f"[bold red]nothing imported:[/] {res.bad} bad of {res.rows} rows"
                  + ("" if skip_bad else " (--skip-bad imports the good rows)"))
        raise typer.Exit(1)
    out.print(f"imported {res.imported} {kind} rows of {res.rows} into {store.path}"
              + (f"; {res.bad} bad rows skipped" if res.errors else ""))
    if res.errors:
        raise typer.Exit(1)
