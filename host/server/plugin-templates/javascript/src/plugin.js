// `{{name}}`: a wasmflow flavor plugin in JavaScript for models with a `{{flavor}}` MLmodel
// section. build.sh bundles this module with its imports (rolldown) and makes the component
// with `jco componentize`. The model itself is in model.js.

import { Linear } from './model.js';
import * as sdk from './wasmflow.js';

class Model {
  constructor(linear) {
    this.linear = linear;
  }

  static load(config) {
    return sdk.guarded(() => {
      const { section } = sdk.parseLoadConfig(config);
      const fileName = section.data ?? 'coefficients.json';
      let linear;
      try {
        linear = new Linear(JSON.parse(sdk.readModelFile(fileName)));
      } catch (e) {
        if (e instanceof sdk.PluginError) throw e;
        throw sdk.invalidModel(`bad '${fileName}': ${e.message}`);
      }
      sdk.log('info', `loaded a linear model over ${linear.features.length} features`);
      return new Model(linear);
    });
  }

  signature() {
    return undefined; // the host uses the MLmodel's own signature, when it has one
  }

  predict(input, params) {
    return sdk.guarded(() => {
      const { offset } = sdk.parseParams(params, { offset: 0 });
      const x = sdk.toMatrix(input, this.linear.features);
      return sdk.singleVector(this.linear.score(x, offset));
    });
  }
}

export const flavor = {
  info() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      loads: ['{{flavor}}'],
      description: 'linear scores from a JSON file of coefficients, written in JavaScript',
    };
  },
  Model,
};
