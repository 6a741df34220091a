"""TensorBoard's WSGI app in process over a real log tree: real event files → EventMultiplexer →
MultiplexerDataProvider → TBContext → TensorBoardWSGI → werkzeug test Client, with tbreg's
Overfitting plugin, TensorBoard's Scalars and its HParams plugin."""

import json

from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester, plugin_event_multiplexer
from tensorboard.backend.event_processing import data_provider as tb_data_provider
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.plugins.scalar import scalars_plugin
from werkzeug.test import Client

from tbreg.plugin.plugin import OverfittingPlugin

PREFIX = "/data/plugin/overfitting/"


class Server:
    """TensorBoard's WSGI app over `logdir` with the overfitting, scalars and HParams plugins."""

    def __init__(self, logdir):
        self.logdir = str(logdir)
        self.multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
            tensor_size_guidance=data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE,
        )
        self.reload()
        provider = tb_data_provider.MultiplexerDataProvider(self.multiplexer, self.logdir)
        instances = {}
        context = base_plugin.TBContext(
            data_provider=provider, logdir=self.logdir, multiplexer=self.multiplexer, plugin_name_to_instance=instances
        )
        plugins = [
            OverfittingPlugin(context),
            scalars_plugin.ScalarsPlugin(context),
            hparams_plugin.HParamsPlugin(context),
        ]
        instances.update({p.plugin_name: p for p in plugins})
        self.plugin = plugins[0]
        self.client = Client(application.TensorBoardWSGI(plugins, data_provider=provider))

    def reload(self):
        self.multiplexer.AddRunsFromDirectory(self.logdir)
        self.multiplexer.Reload()

    def get(self, route, **params):
        return self.client.get(PREFIX + route, query_string=params)

    def json(self, route, **params):
        response = self.get(route, **params)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        return json.loads(response.get_data(as_text=True), parse_constant=strict_json)


def strict_json(constant):
    raise AssertionError(f"{constant} is not JSON")  # what browsers' JSON.parse refuses
