// The public library API: what the CLI itself calls. Deeper modules stay importable by path, but these
// names are the ones kept stable.

export { type BuildDiskOptions, type BuildDiskResult, buildDisk } from './build/index.js';
export {
  type Configuration,
  configurationSchema,
  validateArgs,
  validateConfiguration,
} from './config/index.js';
export { configureImage, readAppliedConfig } from './configure/index.js';
export { CloudletsError, type ErrorCode, isCloudletsError } from './errors.js';
export { type Ext4Options, writeExt4 } from './fs/ext4/index.js';
export { type FoundPath, findPaths } from './image/find.js';
export { type Image, type OpenImageOptions, openImage } from './image/index.js';
export { initImage } from './init/index.js';
export {
  type EntryPoint,
  type LoadedManifest,
  type LoadManifestOptions,
  loadManifest,
  MANIFEST_PATH,
  type Manifest,
  manifestJsonSchema,
} from './manifest/index.js';
export { type ExportOptions, exportEntries } from './pipeline/export.js';
export {
  type Entry,
  type EntrySink,
  type EntryStream,
  type EntryType,
  eachEntry,
  type ImageSource,
  type SyncContentReader,
} from './stream/entry.js';
export { classify, type PathKind, selectEntries } from './stream/filters/select.js';
export { type TarOutput, type WriteTarOptions, writeTar } from './stream/sinks/tar.js';
export { type DirectorySourceOptions, openDirectorySource } from './stream/sources/dir.js';
export { openTarSource, type TarSourceOptions } from './stream/sources/tar.js';
export { type RenderOptions, renderTemplates } from './templates/index.js';

export {
  checkoutImage,
  cloneImage,
  commitImage,
  imageDiff,
  imageLog,
  imageStatus,
  pullImage,
  pushImage,
} from './vcs/repo.js';
export { openRevisionSource } from './vcs/revision-source.js';
