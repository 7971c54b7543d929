import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { DownloadUrlSigner } from '../../app/api/deps';

/**
 * Presigns a GET of the finished file for DOWNLOAD_PRESIGN_SECONDS (60 s by default), at the
 * moment of the download, with the function's current credentials. The response headers make the
 * browser save it under the export's file name (RFC 6266 with an RFC 5987 UTF-8 name: Korean
 * names survive).
 */
/**
 * `attachment` with both names: `filename` in printable ASCII for old clients (anything else,
 * and the quote and backslash that would end or escape the quoted string, as `_`), and
 * `filename*` in UTF-8 percent-encoding. RFC 8187's attr-char has no `'`, `(`, `)` or `*`, which
 * encodeURIComponent leaves as they are: they are encoded too, so a name holding one (none of
 * ours do yet: they are built from dates and hex ids) still parses in strict clients.
 */
export function contentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7E]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export class S3DownloadUrlSigner implements DownloadUrlSigner {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async presignGet(objectKey: string, options: { expiresInSeconds: number; fileName: string }): Promise<string> {
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: objectKey,
      ResponseContentDisposition: contentDisposition(options.fileName),
      ResponseContentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
      ResponseCacheControl: 'no-store',
    });
    return getSignedUrl(this.s3, command, { expiresIn: options.expiresInSeconds });
  }
}
