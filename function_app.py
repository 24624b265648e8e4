"""Azure Functions entry point (Python v2 model): composes the blueprints, nothing else."""

import azure.functions as func

from functions.activity import bp as activity_bp
from functions.callback_retry import bp as callback_retry_bp
from functions.callbacks import bp as callbacks_bp
from functions.links import bp as links_bp
from functions.rtj import bp as rtj_bp
from shared.log import configure_logging

configure_logging()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(activity_bp)
app.register_functions(callbacks_bp)
app.register_functions(callback_retry_bp)
app.register_functions(rtj_bp)
app.register_functions(links_bp)
