"""The results page (`reports/index.html`): table, charts, loss curves and every video in a 360 viewer."""
