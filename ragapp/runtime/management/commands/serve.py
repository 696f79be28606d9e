"""`manage.py serve`: what `make run` calls; see ragapp.runtime.stack."""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ragapp.accounts.services import admin_ensure, staff_group
from ragapp.documents.services import demo_collection_ensure, demo_documents_ensure
from ragapp.runtime import stack as runtime_stack
from ragapp.runtime.exceptions import RuntimeSetupError


class Command(BaseCommand):
    help = "Start ragapp: database, broker, web server and worker, until Ctrl-C."
    requires_system_checks = []  # run after the database is up, not before

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.SERVE_HOST)
        parser.add_argument("--port", type=int, default=settings.SERVE_PORT)
        parser.add_argument(
            "--concurrency", type=int, default=settings.WORKER_CONCURRENCY
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        stack = runtime_stack.Stack()
        with runtime_stack.stop_signals(stack):
            try:
                code = self._run(stack, host, port, options["concurrency"])
            except RuntimeSetupError as exc:
                raise CommandError(str(exc)) from None
            finally:
                self.stdout.write("Stopping ragapp…")
                runtime_stack.shutdown(stack)
                self.stdout.write("ragapp stopped.")
        if code:
            raise CommandError(
                "ragapp stopped because a process exited.", returncode=code
            )

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def _run(
        self,
        stack: runtime_stack.Stack,
        host: str,
        port: int,
        concurrency: int,
    ) -> int:
        runtime_stack.check_port_free(host, port)
        self._say(f"Data directory: {settings.DATA_DIR}")
        self._say(f"Database: {runtime_stack.prepare_database(stack)}")
        call_command("check")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._say(f"Broker: {runtime_stack.start_broker(stack)}")
        password = admin_ensure()
        demo = demo_collection_ensure(reader_groups=[staff_group()])
        added = [
            outcome
            for outcome in demo_documents_ensure(
                collection=demo, paths=runtime_stack.demo_document_paths()
            )
            if outcome.created
        ]
        if added:
            self._say(f"Demo: {len(added)} of ragapp's own docs queued for indexing.")
        runtime_stack.start_workers(stack, concurrency)
        runtime_stack.start_web(stack, host, port)
        ready = runtime_stack.wait_ready(
            stack, "web server", lambda: runtime_stack.web_answers(host, port)
        ) and runtime_stack.wait_ready(stack, "workers", runtime_stack.worker_answers)
        if not ready:
            return 0  # Ctrl-C during start-up
        url = f"http://{host}:{port}/"
        lines = [f"ragapp is running at {url}  (web + workers; Ctrl-C stops them)"]
        if password:
            lines += [
                "",
                "An admin account was created. Its password is shown only this once:",
                "    username: admin",
                f"    password: {password}",
                "Change it after signing in; `manage.py changepassword admin` resets it.",
            ]
        else:
            lines.append(
                "Sign in with your existing account "
                "(forgot it? .venv/bin/python manage.py changepassword admin)."
            )
        self._say(self.style.SUCCESS("\n".join(lines)))
        return runtime_stack.supervise(stack)
