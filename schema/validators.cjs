// The precompiled validators, each loaded on first use. Plain CommonJS requires of fixed names, so that
// the command's bundle (scripts/bundle.mjs) takes both files in and its code cache covers them: loaded
// from here at run time they were compiled afresh by every command (~10 ms, measured).
'use strict';

exports.manifestValidator = () => require('./manifest.validate.cjs');
exports.metaSchemaValidator = () => require('./json-schema-2020-12.validate.cjs').validate;
